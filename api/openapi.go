package api

import (
	_ "embed"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
)

// OpenAPI is the server API's OpenAPI 3.1 document, as GET /openapi.json
// serves it. It is checked in beside this file; TestOpenAPIIsCurrent
// fails when the types or the methods below say otherwise (go test
// ./api -run OpenAPI -update rewrites it).
//
//go:embed openapi.json
var OpenAPI []byte

// endpoint describes one method for the document.
type endpoint struct {
	method, summary string
	params, result  any
}

// endpoints is every method, in the order the document lists them.
var endpoints = []endpoint{
	{MethodPublish, "Post a message to a room as a named sender or a bot account; answers its seq once stored.", Publish{}, Published{}},
	{MethodBroadcast, "Post one message to several rooms; answers room by room.", Broadcast{}, Broadcasted{}},
	{MethodDM, "Send a direct message to an account: delivered to its sessions, or kept for its next login.", DM{}, DMSent{}},
	{MethodDisconnect, "End every session of an account on every node, with bye disconnected.", Disconnect{}, Disconnected{}},
	{MethodRoomCreate, "Create a room before anyone joins it, with an owner, a topic and privacy.", RoomCreate{}, OK{}},
	{MethodRoomSet, "Change a room's owner, topic or privacy.", RoomSet{}, OK{}},
	{MethodRoomInfo, "Describe a room: members, last seq, owner, operators, topic, privacy.", RoomRef{}, RoomInfo{}},
	{MethodRooms, "List every room with members or rules, private ones too.", struct{}{}, Rooms{}},
	{MethodRoomMembers, "Page a room's members, across the cluster.", RoomMembers{}, Members{}},
	{MethodModerate, "Ban, unban, mute, unmute, kick, op, deop, invite or uninvite an account in a room, as an admin.", Moderate{}, OK{}},
	{MethodPresence, "Say whether an account is online, and on which node.", Presence{}, Present{}},
	{MethodHistory, "A page of a room's messages as members receive them.", History{}, Page{}},
	{MethodStats, "This node's counts.", struct{}{}, Stats{}},
	{MethodBatch, "Run up to 100 requests in order, each as if alone.", Batch{}, Batched{}},
}

// BuildOpenAPI returns the document the types and methods of this
// package describe.
func BuildOpenAPI() ([]byte, error) {
	schemas := map[string]any{}
	paths := map[string]any{}
	errorResponses := map[string]any{}
	for code, words := range map[string]string{
		"400": "bad_request, bad_room, bad_nick and the protocol's other input codes",
		"401": "bad_token: no API key, or not one of the server's",
		"403": "forbidden: a read-only key on a method that writes",
		"404": "not_found (no such room or account) or unknown_type (no such method)",
		"413": "body_too_large",
		"415": "bad_request: the body is not sent as application/json",
		"429": "rate_limited: the key is over its rate",
		"503": "unavailable: the cluster could not be reached in time; retry",
	} {
		errorResponses[code] = map[string]any{"description": words, "content": jsonContent(ref("Error"))}
	}
	schemaOf(reflect.TypeOf(Error{}), schemas)
	for _, e := range endpoints {
		responses := map[string]any{"200": map[string]any{"description": "OK", "content": jsonContent(schemaOf(reflect.TypeOf(e.result), schemas))}}
		for k, v := range errorResponses {
			responses[k] = v
		}
		op := map[string]any{
			"operationId": e.method,
			"summary":     e.summary,
			"requestBody": map[string]any{"required": true, "content": jsonContent(schemaOf(reflect.TypeOf(e.params), schemas))},
			"responses":   responses,
		}
		if ReadOnly[e.method] {
			op["x-read-only"] = true
		}
		paths["/api/"+e.method] = map[string]any{"post": op}
	}
	paths["/openapi.json"] = map[string]any{"get": map[string]any{
		"operationId": "openapi", "summary": "This document.", "security": []any{},
		"responses": map[string]any{"200": map[string]any{"description": "OK", "content": jsonContent(map[string]any{"type": "object"})}},
	}}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "Parley server API",
			"version":     "1",
			"description": "The application's way in (docs/API.md). Every method is POST /api/<method> with a JSON body and an API key.",
		},
		"paths":    paths,
		"security": []any{map[string]any{"bearer": []any{}}, map[string]any{"apiKey": []any{}}},
		"components": map[string]any{
			"schemas": schemas,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer"},
				"apiKey": map[string]any{"type": "apiKey", "in": "header", "name": "X-API-Key"},
			},
		},
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	return append(out, '\n'), err
}

func jsonContent(schema any) map[string]any {
	return map[string]any{"application/json": map[string]any{"schema": schema}}
}

func ref(name string) map[string]any {
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

var rawMessage = reflect.TypeOf(json.RawMessage{})

// schemaOf describes t as JSON Schema; named structs go to schemas and
// are referred to.
func schemaOf(t reflect.Type, schemas map[string]any) any {
	if t == rawMessage {
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaOf(t.Elem(), schemas)
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return map[string]any{"type": "integer"}
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), schemas)}
	case reflect.Struct:
		if t.Name() == "" {
			return objectSchema(t, schemas)
		}
		if _, done := schemas[t.Name()]; !done {
			schemas[t.Name()] = map[string]any{} // a placeholder against recursion
			schemas[t.Name()] = objectSchema(t, schemas)
		}
		return ref(t.Name())
	}
	return map[string]any{}
}

func objectSchema(t reflect.Type, schemas map[string]any) map[string]any {
	props := map[string]any{}
	var required []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = schemaOf(f.Type, schemas)
		if !strings.Contains(opts, "omitempty") && f.Type.Kind() != reflect.Pointer {
			required = append(required, name)
		}
	}
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		sort.Strings(required)
		s["required"] = required
	}
	return s
}
