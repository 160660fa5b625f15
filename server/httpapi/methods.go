package httpapi

import (
	"context"
	"fmt"

	"parley/api"
	"parley/codec"
)

// method is one of the API's methods: it decodes its params and acts
// for key, within ctx.
type method func(ctx context.Context, a *API, key Key, params []byte) (any, error)

// methods is the API's method table, one handler per method (batch is
// the handler's own).
var methods = map[string]method{
	api.MethodPublish:     publish,
	api.MethodBroadcast:   broadcast,
	api.MethodDM:          dm,
	api.MethodDisconnect:  disconnect,
	api.MethodRoomCreate:  roomCreate,
	api.MethodRoomSet:     roomSet,
	api.MethodRoomInfo:    roomInfo,
	api.MethodRooms:       rooms,
	api.MethodRoomMembers: roomMembers,
	api.MethodModerate:    moderate,
	api.MethodPresence:    presence,
	api.MethodHistory:     history,
	api.MethodStats:       stats,
}

// Methods lists the method names the API serves, batch included: the
// OpenAPI document must describe each.
func Methods() []string {
	out := []string{api.MethodBatch}
	for name := range methods {
		out = append(out, name)
	}
	return out
}

// wait waits for an answer that App gives through a done callback.
func wait[T any](ctx context.Context, start func(done func(T, error))) (T, error) {
	type answer struct {
		v   T
		err error
	}
	ch := make(chan answer, 1)
	start(func(v T, err error) { ch <- answer{v, err} })
	select {
	case ans := <-ch:
		return ans.v, ans.err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("%w: the chat did not answer in time; the request may still complete", codec.ErrUnavailable)
	}
}

func publish(ctx context.Context, a *API, _ Key, params []byte) (any, error) {
	var p api.Publish
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	return a.publish(ctx, p)
}

func (a *API) publish(ctx context.Context, p api.Publish) (api.Published, error) {
	seq, err := wait(ctx, func(done func(uint64, error)) { a.cfg.App.Publish(p, done) })
	if err != nil {
		return api.Published{}, err
	}
	n, _ := codec.ParseRoom(p.Room)
	return api.Published{Room: n.Display, Seq: seq}, nil
}

func broadcast(ctx context.Context, a *API, _ Key, params []byte) (any, error) {
	var b api.Broadcast
	if err := decode(params, &b); err != nil {
		return nil, err
	}
	switch {
	case len(b.Rooms) == 0:
		return nil, fmt.Errorf("%w: rooms is required", codec.ErrBadRequest)
	case len(b.Rooms) > api.MaxBroadcast:
		return nil, fmt.Errorf("%w: a broadcast names at most %d rooms", codec.ErrBadRequest, api.MaxBroadcast)
	}
	out := api.Broadcasted{Results: make([]api.RoomResult, len(b.Rooms))}
	type result struct {
		i   int
		seq uint64
		err error
	}
	ch := make(chan result, len(b.Rooms))
	for i, room := range b.Rooms {
		out.Results[i].Room = room
		a.cfg.App.Publish(api.Publish{Room: room, From: b.From, Account: b.Account, Body: b.Body}, func(seq uint64, err error) {
			ch <- result{i, seq, err}
		})
	}
	for range b.Rooms {
		select {
		case r := <-ch:
			out.Results[r.i].Seq = r.seq
			if r.err != nil {
				_, out.Results[r.i].Error = status(r.err)
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: the chat did not answer in time; the broadcast may still complete", codec.ErrUnavailable)
		}
	}
	return out, nil
}

func dm(ctx context.Context, a *API, _ Key, params []byte) (any, error) {
	var d api.DM
	if err := decode(params, &d); err != nil {
		return nil, err
	}
	return wait(ctx, func(done func(api.DMSent, error)) { a.cfg.App.AppDM(d, done) })
}

func disconnect(_ context.Context, a *API, _ Key, params []byte) (any, error) {
	var d api.Disconnect
	if err := decode(params, &d); err != nil {
		return nil, err
	}
	n, err := a.cfg.App.Disconnect(d.Account, d.Message)
	return api.Disconnected{Sessions: n}, err
}

func roomCreate(_ context.Context, a *API, key Key, params []byte) (any, error) {
	var c api.RoomCreate
	if err := decode(params, &c); err != nil {
		return nil, err
	}
	return api.OK{OK: true}, a.cfg.App.CreateRoom(a.cfg.Actor(key.ID), c)
}

func roomSet(_ context.Context, a *API, key Key, params []byte) (any, error) {
	var c api.RoomSet
	if err := decode(params, &c); err != nil {
		return nil, err
	}
	if c.Owner == nil && c.Topic == nil && c.Private == nil {
		return nil, fmt.Errorf("%w: room_set changes owner, topic or private: name one", codec.ErrBadRequest)
	}
	return api.OK{OK: true}, a.cfg.App.SetRoom(a.cfg.Actor(key.ID), c)
}

func roomInfo(ctx context.Context, a *API, _ Key, params []byte) (any, error) {
	var q api.RoomRef
	if err := decode(params, &q); err != nil {
		return nil, err
	}
	return wait(ctx, func(done func(api.RoomInfo, error)) { a.cfg.App.RoomInfo(q.Room, done) })
}

func rooms(_ context.Context, a *API, _ Key, params []byte) (any, error) {
	if err := decode(params, &struct{}{}); err != nil {
		return nil, err
	}
	return api.Rooms{Rooms: a.cfg.App.RoomList()}, nil
}

func roomMembers(ctx context.Context, a *API, _ Key, params []byte) (any, error) {
	var q api.RoomMembers
	if err := decode(params, &q); err != nil {
		return nil, err
	}
	return wait(ctx, func(done func(api.Members, error)) { a.cfg.App.RoomMembers(q.Room, q.After, q.Limit, done) })
}

func moderate(_ context.Context, a *API, key Key, params []byte) (any, error) {
	var m api.Moderate
	if err := decode(params, &m); err != nil {
		return nil, err
	}
	return api.OK{OK: true}, a.cfg.App.Moderate(a.cfg.Actor(key.ID), m)
}

func presence(_ context.Context, a *API, _ Key, params []byte) (any, error) {
	var q api.Presence
	if err := decode(params, &q); err != nil {
		return nil, err
	}
	return a.cfg.App.Presence(q.Account)
}

func history(ctx context.Context, a *API, _ Key, params []byte) (any, error) {
	var q api.History
	if err := decode(params, &q); err != nil {
		return nil, err
	}
	return wait(ctx, func(done func(api.Page, error)) { a.cfg.App.History(q, done) })
}

func stats(_ context.Context, a *API, _ Key, params []byte) (any, error) {
	if err := decode(params, &struct{}{}); err != nil {
		return nil, err
	}
	return a.cfg.Stats(), nil
}
