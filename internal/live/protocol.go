package live

import (
	"bytes"
	"encoding/json"
	"io"
	"sync"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
)

// The graphql-transport-ws close codes the protocol check uses, besides
// CloseBadRequest and CloseTooMany.
const (
	// CloseUnauthorized closes a connection that subscribes before its
	// connection_init (graphql-ws: Unauthorized).
	CloseUnauthorized = 4401
	// CloseSubscriberExists closes a connection that subscribes with the
	// id of an operation still running (graphql-ws: Subscriber already
	// exists).
	CloseSubscriberExists = 4409
)

// protocol checks what a graphql-transport-ws client sends, before gqlgen
// reads it, and closes the connection as the protocol says when a message
// breaks it. gqlgen closes with 1002 or 1000 where the protocol names a
// code, reads a message with trailing bytes or a subscribe without an id,
// answers an invalid subscribe payload with an error where the protocol
// closes, refuses a ping before connection_init, and runs a second
// operation under an id in use (FuzzWebSocket found each). Messages are
// read as gqlgen reads them (keys matched without regard to case, the last
// of a repeated key), so that a message passed on means to gqlgen what it
// meant here.
type protocol struct {
	mu      sync.Mutex
	inited  bool            // a connection_init was passed on
	active  map[string]bool // operations subscribed and not yet complete
	errored map[string]bool // operations whose last message sent was an error
}

// verdict is what to do with one message of the client.
type verdict struct {
	pass   bool            // hand it to gqlgen
	reply  json.RawMessage // answer it here (a pong), and read the next
	code   int             // close the connection with code and reason
	reason string
}

// clientMessage is a message of a graphql-transport-ws client.
type clientMessage struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

// read checks one message of the client. A message that is not one JSON
// object, of a type a client sends, with the payload its type has, is a
// bad request (4400); a second connection_init is one too many (4429); a
// subscribe before connection_init is unauthorized (4401), and one with
// the id of an operation still running a duplicate (4409). A ping, pong or
// complete before connection_init is answered or dropped here: the
// protocol allows them at any time (graphql-ws's own server does so), and
// gqlgen would close with 1002.
func (p *protocol) read(data []byte) verdict {
	var m clientMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return badRequest
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch m.Type {
	case "connection_init":
		var payload map[string]any // what gqlgen decodes it into
		switch {
		case p.inited:
			return verdict{code: CloseTooMany, reason: "Too many initialisation requests"}
		case !objectOrNull(m.Payload) || len(m.Payload) > 0 && json.Unmarshal(m.Payload, &payload) != nil:
			return badRequest
		}
		p.inited = true
	case "ping", "pong":
		switch {
		case !objectOrNull(m.Payload):
			return badRequest
		case p.inited:
		case m.Type == "ping":
			reply, _ := json.Marshal(clientMessage{Type: "pong", Payload: m.Payload})
			return verdict{reply: reply}
		default:
			return verdict{}
		}
	case "subscribe":
		switch {
		case m.ID == "" || !operation(m.Payload):
			return badRequest
		case !p.inited:
			return verdict{code: CloseUnauthorized, reason: "Unauthorized"}
		case p.active[m.ID]:
			return verdict{code: CloseSubscriberExists, reason: clipReason("Subscriber for " + m.ID + " already exists")}
		}
		if p.active == nil {
			p.active = map[string]bool{}
		}
		p.active[m.ID] = true
	case "complete":
		switch {
		case m.ID == "":
			return badRequest
		case !p.inited:
			return verdict{} // nothing to complete yet
		}
		delete(p.active, m.ID)
	default:
		return badRequest
	}
	return verdict{pass: true}
}

// sent records a message the server sends, of type typ for operation id,
// and reports whether to drop it instead. A complete or an error ends its
// operation, whose id may then be used again. The complete gqlgen sends
// after the error that refuses a subscription is dropped: the protocol
// ends an operation with its error, and graphql-ws's client, given both,
// counts the operation's end twice and closes the socket under the
// client's other subscriptions.
func (p *protocol) sent(typ, id string) (drop bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	drop = typ == "complete" && p.errored[id]
	switch {
	case typ == "error":
		if p.errored == nil {
			p.errored = map[string]bool{}
		}
		p.errored[id] = true
	case p.errored[id]:
		delete(p.errored, id)
	}
	if typ == "complete" || typ == "error" {
		delete(p.active, id)
	}
	return drop
}

var badRequest = verdict{code: CloseBadRequest, reason: "Invalid message"}

// objectOrNull reports whether raw is absent, null or a JSON object.
func objectOrNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null" || raw[0] == '{'
}

// operation reports whether raw is a subscribe's payload: a JSON object of
// GraphQL parameters, as gqlgen decodes them (numbers as written).
func operation(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var params graphql.RawParams
	return dec.Decode(&params) == nil
}

// clipReason cuts a close reason to the 123 bytes a close frame holds.
func clipReason(s string) string {
	const limit = 123
	if len(s) <= limit {
		return s
	}
	n := limit
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// NextReader reads the client's next message: over graphql-transport-ws,
// checked first (see protocol), the connection closed when it breaks the
// protocol.
func (c *trackedConn) NextReader() (int, io.Reader, error) {
	for {
		typ, r, err := c.WebsocketConn.NextReader()
		if err != nil || c.Subprotocol() != graphqlTransportWS {
			return typ, r, err
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return typ, nil, err
		}
		v := c.protocol.read(data)
		switch {
		case v.pass:
			return typ, bytes.NewReader(data), nil
		case v.code != 0:
			_ = c.WebsocketConn.WriteClose(v.code, v.reason)
			return typ, nil, transport.ErrWebsocketClosed
		case v.reply != nil:
			if err := c.WebsocketConn.WriteJSON(v.reply); err != nil {
				return typ, nil, err
			}
		}
	}
}
