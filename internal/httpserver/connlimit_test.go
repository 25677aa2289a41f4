package httpserver

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConnLimiter: past max open connections, one more is answered a coded
// 503 (after its request, which it may send first) and closed; a closed
// connection gives its slot back, once.
func TestConnLimiter(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := LimitConnections(ln, 2)
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	take := func() net.Conn {
		select {
		case c := <-accepted:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no connection accepted")
			return nil
		}
	}

	dial()
	dial()
	first, second := take(), take()
	open, refused := l.Connections()
	assert.Equal(t, int64(2), open)
	assert.Zero(t, refused)

	third := dial()
	_, err = io.WriteString(third, "GET /query HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(third), nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	var body struct {
		Errors []struct {
			Extensions struct{ Code string }
		}
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Len(t, body.Errors, 1)
	assert.Equal(t, "SERVER_OVERLOADED", body.Errors[0].Extensions.Code)
	_, refused = l.Connections()
	assert.Equal(t, int64(1), refused)

	// A connection that sends nothing is refused all the same.
	silent := dial()
	raw, _ := io.ReadAll(silent)
	assert.Contains(t, string(raw), "503 Service Unavailable")

	require.NoError(t, first.Close())
	_ = first.Close() // a second close gives back nothing
	open, _ = l.Connections()
	assert.Equal(t, int64(1), open)
	dial()
	take()
	open, _ = l.Connections()
	assert.Equal(t, int64(2), open)
	_ = second.Close()
}
