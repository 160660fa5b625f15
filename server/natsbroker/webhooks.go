package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Webhook queues across the cluster (docs/API.md "Webhooks"): each
// webhook's events wait in a stream of their own, which every node
// appends to, bounded (the oldest go first), and one node at a time
// delivers, the live node with the lowest id, through a durable consumer
// that hands out its messages in the stream's order and again after
// ackWait when the node that held them died. A room's events are
// appended by its owner in the room's order, so they arrive in order.

// webhookAckWait is how long a delivering node may hold a batch before
// the consumer hands it to the next: the node that held it is dead by
// then, or kept it in progress.
const webhookAckWait = 30 * time.Second

// EventQueue is a webhook's queue in the cluster (webhook.Queue).
type EventQueue struct {
	n        *Broker
	stream   jetstream.Stream
	consumer jetstream.Consumer
	subject  string
	max      int

	mu   sync.Mutex
	held []jetstream.Msg // fetched and not yet acked: Peek hands them out again
}

// EventQueue opens (or creates) the webhook queue called name, bounded
// to max events. Call it after Start.
func (n *Broker) EventQueue(name string, max int) (*EventQueue, error) {
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	subject := n.subj.cluster + ".webhook." + name
	stream, err := n.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: n.subj.cluster + "_webhook_" + name, Subjects: []string{subject},
		Storage: jetstream.FileStorage, MaxMsgs: int64(max), Discard: jetstream.DiscardOld,
	})
	if err != nil {
		return nil, fmt.Errorf("the webhook stream: %w", err)
	}
	consumer, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "deliver", AckPolicy: jetstream.AckAllPolicy, AckWait: webhookAckWait,
		MaxAckPending: 1 << 16, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("the webhook consumer: %w", err)
	}
	return &EventQueue{n: n, stream: stream, consumer: consumer, subject: subject, max: max}, nil
}

// Append publishes events to the stream, and reports how many of the
// oldest the bound pushed out, as far as this node can tell.
func (q *EventQueue) Append(events [][]byte, _ int) (int, error) {
	ctx, cancel := context.WithTimeout(q.n.ctx, opTimeout)
	defer cancel()
	before, err := q.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	var acks []jetstream.PubAckFuture
	for _, e := range events {
		f, err := q.n.js.PublishAsync(q.subject, e)
		if err != nil {
			return 0, err
		}
		acks = append(acks, f)
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return 0, err
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return max(0, int(before.State.Msgs)+len(events)-q.max), nil
}

// Peek returns the batch this node holds, or fetches the next n (a
// stream's events are small: maxBytes is not checked).
func (q *EventQueue) Peek(n, _ int) ([][]byte, uint64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.held) == 0 {
		batch, err := q.consumer.FetchNoWait(n)
		if err != nil {
			return nil, 0, err
		}
		for m := range batch.Messages() {
			q.held = append(q.held, m)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && len(q.held) == 0 {
			return nil, 0, err
		}
	} else {
		_ = q.held[len(q.held)-1].InProgress() // still trying: keep it
	}
	out := make([][]byte, len(q.held))
	var last uint64
	for i, m := range q.held {
		out[i] = m.Data()
		if meta, err := m.Metadata(); err == nil {
			last = meta.Sequence.Stream
		}
	}
	return out, last, nil
}

// Remove acks the batch held (with AckAll, its last message acks it).
func (q *EventQueue) Remove(uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.held) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(q.n.ctx, opTimeout)
	defer cancel()
	err := q.held[len(q.held)-1].DoubleAck(ctx)
	q.held = nil
	return err
}

// Len is how many events wait in the stream, not yet delivered.
func (q *EventQueue) Len() int {
	ctx, cancel := context.WithTimeout(q.n.ctx, opTimeout)
	defer cancel()
	info, err := q.consumer.Info(ctx)
	if err != nil {
		return 0
	}
	return int(info.NumPending) + info.NumAckPending
}

// Delivers reports whether this node delivers the cluster's webhooks:
// it is the live node with the lowest id.
func (q *EventQueue) Delivers() bool {
	n := q.n
	if !n.connected() {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, id := range n.livePeersLocked() {
		if id < n.id {
			return false
		}
	}
	return true
}

// Release hands the batch this node holds back to the consumer, for the
// node that delivers next (this one is stopping).
func (q *EventQueue) Release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range q.held {
		_ = m.Nak()
	}
	q.held = nil
}
