package natsbroker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bytedance/sonic"
	"github.com/nats-io/nats.go/jetstream"

	"parley/codec"
	"parley/server/broker"
	"parley/server/hub"
)

// The account table and the direct messages that wait, across the
// cluster (docs/CLUSTER.md "Accounts"): the read markers and remembered
// nicks live in a key-value bucket that every node replicates into its
// hub (AccountChanged), so a login anywhere finds its markers and a
// direct message anywhere finds an account's last nick; the messages
// that wait for an offline account live in a stream, a subject per
// account, which the node where the account next logs in reads and
// purges. The broker is the hub's AccountStore and OfflineStore.

var (
	_ hub.AccountStore = (*Broker)(nil)
	_ hub.OfflineStore = (*Broker)(nil)
)

// SaveAccount queues a record for the bucket, behind the rules' writes.
// It never blocks: a full queue drops the write and counts it.
func (n *Broker) SaveAccount(key string, data []byte) {
	n.queueGov(govWrite{key: key, data: data, account: true})
}

func (n *Broker) writeAccount(ctx context.Context, w govWrite) {
	if _, err := n.accounts.Put(ctx, w.key, w.data); err != nil {
		n.log.Error("an account record was not stored in the cluster", "key", w.key, "err", err)
	}
}

// applyAccount hands a record to the hub; this node's own, coming back,
// changes nothing there (markers only move forward).
func (n *Broker) applyAccount(e jetstream.KeyValueEntry) {
	if !isDelete(e) {
		n.h.AccountChanged(e.Value())
	}
}

func (n *Broker) offlineStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name: n.subj.cluster + "_offline", Subjects: []string{n.subj.cluster + ".offline.*"},
		Storage: jetstream.FileStorage, MaxMsgsPerSubject: codec.MaxOfflineDMs,
		Discard: jetstream.DiscardNew, DiscardNewPerSubject: true,
		MaxBytes: 2 * codec.MaxOfflineBytes, MaxAge: codec.DefaultOfflineDMDays * 24 * time.Hour,
	}
}

func (s subjects) offline(account string) string {
	sum := sha256.Sum256([]byte(account))
	return s.cluster + ".offline." + hex.EncodeToString(sum[:16])
}

// Leave stores dm on the account's subject of the stream, which refuses
// it when the subject or the stream is full.
func (n *Broker) Leave(dm broker.OfflineDM, done func(error)) {
	data, err := sonic.Marshal(&dm)
	if err != nil {
		done(err)
		return
	}
	n.goRun(func() {
		ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
		defer cancel()
		_, err := n.js.Publish(ctx, n.subj.offline(dm.Account), data)
		switch {
		case err == nil:
			done(nil)
		case strings.Contains(err.Error(), "maximum"): // messages per subject, or bytes
			done(broker.ErrInboxFull(dm.To))
		default:
			done(fmt.Errorf("%w: the message was not stored: %v", codec.ErrUnavailable, err))
		}
	})
}

// Collect reads the account's subject, then purges what it read.
func (n *Broker) Collect(account string, done func([]broker.OfflineDM, error)) {
	n.goRun(func() {
		n.collecting.Lock() // two logins of one account must not both read its messages
		dms, err := n.collect(account)
		n.collecting.Unlock()
		done(dms, err)
	})
}

func (n *Broker) collect(account string) ([]broker.OfflineDM, error) {
	ctx, cancel := context.WithTimeout(n.ctx, opTimeout)
	defer cancel()
	subject := n.subj.offline(account)
	// The stream handle is shared: Info would write its cache from two
	// logins at once; the last message's lookup writes nothing.
	if _, err := n.offline.GetLastMsgForSubject(ctx, subject); errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	cons, err := n.offline.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, err
	}
	batch, err := cons.FetchNoWait(codec.MaxOfflineDMs)
	if err != nil {
		return nil, err
	}
	var out []broker.OfflineDM
	var last uint64
	for m := range batch.Messages() {
		var dm broker.OfflineDM
		if meta, err := m.Metadata(); err == nil {
			last = meta.Sequence.Stream
		}
		if sonic.Unmarshal(m.Data(), &dm) == nil && dm.Account == account {
			out = append(out, dm)
		}
	}
	if last > 0 {
		if err := n.offline.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(last+1)); err != nil {
			n.log.Error("direct messages delivered to an account were not purged; they will be delivered again", "err", err)
		}
	}
	return out, batch.Error()
}
