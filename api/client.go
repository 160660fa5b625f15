package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Client calls a Parley server API. Its methods return *Error for a
// request the server refused.
type Client struct {
	base string
	key  string
	http *http.Client
}

// NewClient returns a client of the API at base (http://host:port or
// https://...) with the key; hc nil means http.DefaultClient.
func NewClient(base, key string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimSuffix(base, "/"), key: key, http: hc}
}

// maxReply bounds an answer the client reads.
const maxReply = 16 << 20

// Call runs method with params (any JSON value, or raw JSON as
// json.RawMessage) and decodes its answer into result (nil: discard).
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	body, err := json.Marshal(params)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/"+method, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.Unmarshal(data, &e) != nil || e.Code == "" {
			return fmt.Errorf("api: %s answered %s", method, resp.Status)
		}
		return &e
	}
	if result == nil {
		return nil
	}
	return json.Unmarshal(data, result)
}

// Publish posts a message to a room.
func (c *Client) Publish(ctx context.Context, p Publish) (out Published, err error) {
	return out, c.Call(ctx, MethodPublish, p, &out)
}

// Broadcast posts a message to several rooms.
func (c *Client) Broadcast(ctx context.Context, b Broadcast) (out Broadcasted, err error) {
	return out, c.Call(ctx, MethodBroadcast, b, &out)
}

// DM sends a direct message to an account.
func (c *Client) DM(ctx context.Context, d DM) (out DMSent, err error) {
	return out, c.Call(ctx, MethodDM, d, &out)
}

// Disconnect ends every session of an account.
func (c *Client) Disconnect(ctx context.Context, d Disconnect) (out Disconnected, err error) {
	return out, c.Call(ctx, MethodDisconnect, d, &out)
}

// CreateRoom creates a room.
func (c *Client) CreateRoom(ctx context.Context, r RoomCreate) error {
	return c.Call(ctx, MethodRoomCreate, r, nil)
}

// SetRoom changes a room's owner, topic or privacy.
func (c *Client) SetRoom(ctx context.Context, r RoomSet) error {
	return c.Call(ctx, MethodRoomSet, r, nil)
}

// RoomInfo describes a room.
func (c *Client) RoomInfo(ctx context.Context, room string) (out RoomInfo, err error) {
	return out, c.Call(ctx, MethodRoomInfo, RoomRef{Room: room}, &out)
}

// Rooms lists the rooms.
func (c *Client) Rooms(ctx context.Context) (out Rooms, err error) {
	return out, c.Call(ctx, MethodRooms, struct{}{}, &out)
}

// RoomMembers pages a room's members.
func (c *Client) RoomMembers(ctx context.Context, q RoomMembers) (out Members, err error) {
	return out, c.Call(ctx, MethodRoomMembers, q, &out)
}

// Moderate takes a moderation action in a room.
func (c *Client) Moderate(ctx context.Context, m Moderate) error {
	return c.Call(ctx, MethodModerate, m, nil)
}

// Presence says whether an account is online.
func (c *Client) Presence(ctx context.Context, account string) (out Present, err error) {
	return out, c.Call(ctx, MethodPresence, Presence{Account: account}, &out)
}

// History returns a page of a room's messages.
func (c *Client) History(ctx context.Context, q History) (out Page, err error) {
	return out, c.Call(ctx, MethodHistory, q, &out)
}

// Stats returns the node's counts.
func (c *Client) Stats(ctx context.Context) (out Stats, err error) {
	return out, c.Call(ctx, MethodStats, struct{}{}, &out)
}

// Batch runs several requests in one.
func (c *Client) Batch(ctx context.Context, b Batch) (out Batched, err error) {
	return out, c.Call(ctx, MethodBatch, b, &out)
}
