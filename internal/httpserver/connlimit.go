package httpserver

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// refusalBody is the answer a connection past MAX_CONNECTIONS reads
// before it is closed: a coded 503 an HTTP client can act on, not a silent
// reset.
const refusalBody = `{"errors":[{"message":"too many connections: try again shortly","extensions":{"code":"SERVER_OVERLOADED"}}]}` + "\n"

var refusal = "HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: application/json\r\n" +
	"Cache-Control: no-store\r\n" +
	"Retry-After: 1\r\n" +
	"Connection: close\r\n" +
	"Content-Length: " + strconv.Itoa(len(refusalBody)) + "\r\n" +
	"\r\n" + refusalBody

// refusalWait bounds the time a refused connection is given to take its
// 503: at most this long per refused connection, and at most maxRefusing
// connections at once (past that, in a flood, they are closed at once).
const (
	refusalWait = 100 * time.Millisecond
	maxRefusing = 256
)

// ConnLimiter is a listener that holds at most max connections open at
// once, WebSockets and SSE streams included (a hijacked connection counts
// until it is closed). A connection past the bound is answered a coded 503
// and closed, so that a flood of idle connections costs each of them a
// slot only, and never queues the next client behind them.
type ConnLimiter struct {
	net.Listener
	max      int64
	open     atomic.Int64
	refused  atomic.Int64
	refusing atomic.Int64
}

// LimitConnections wraps ln so that at most max connections are open at
// once; max 0 is no bound.
func LimitConnections(ln net.Listener, max int) *ConnLimiter {
	return &ConnLimiter{Listener: ln, max: int64(max)}
}

// Accept returns the next connection within the bound, answering the
// ones past it.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if n := l.open.Add(1); l.max > 0 && n > l.max {
			l.open.Add(-1)
			l.refused.Add(1)
			l.refuse(c)
			continue
		}
		return &limitedConn{Conn: c, l: l}, nil
	}
}

// Connections reports the connections open now and those refused since
// the start.
func (l *ConnLimiter) Connections() (open, refused int64) {
	return l.open.Load(), l.refused.Load()
}

// refuse answers c the 503 and closes it, without holding up Accept.
//
// It reads the request's head first (what came of it within refusalWait):
// an HTTP client that is sent an answer before it has written its request
// takes it for a broken connection, not for a 503. It reads a little after
// too, so that closing does not reset the connection before the client has
// read the answer.
func (l *ConnLimiter) refuse(c net.Conn) {
	if l.refusing.Add(1) > maxRefusing {
		l.refusing.Add(-1)
		_ = c.Close()
		return
	}
	go func() {
		defer l.refusing.Add(-1)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(refusalWait))
		readHead(c)
		_ = c.SetDeadline(time.Now().Add(refusalWait))
		if _, err := io.WriteString(c, refusal); err != nil {
			return
		}
		if tcp, ok := c.(interface{ CloseWrite() error }); ok {
			_ = tcp.CloseWrite()
		}
		_, _ = io.CopyN(io.Discard, c, 64<<10)
	}()
}

// readHead reads from c until the end of a request's head, an error (the
// deadline), or 8 KiB.
func readHead(c net.Conn) {
	buf := make([]byte, 8<<10)
	n := 0
	for n < len(buf) {
		k, err := c.Read(buf[n:])
		n += k
		if err != nil || bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
			return
		}
	}
}

// limitedConn gives its slot back once, when it is closed.
type limitedConn struct {
	net.Conn
	l    *ConnLimiter
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}
