package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/upstream/sandbox"
)

// TestSSEDrainCutsTheStream: at a drain an SSE subscription's stream is
// cut, neither completed nor ended cleanly, so that its client subscribes
// again, to another replica; and the cut is no error: nothing is written
// into the stream and nothing logged at error level. (make soak found each
// drained SSE stream answered as an internal error, with a stack in the
// log and an error body written into the event stream, which then ended
// cleanly.)
func TestSSEDrainCutsTheStream(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"LIVE_POLL_INTERVAL": "200ms", "SHUTDOWN_DRAIN": "200ms"})
	body, _ := json.Marshal(map[string]any{"query": `subscription { imageVersion(imageId: "` + sandbox.EdgeReviewingImageID + `") { imageId status } }`})
	req, err := http.NewRequest(http.MethodPost, s.url+"/query", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	lines := bufio.NewScanner(resp.Body)
	var got []string
	for lines.Scan() {
		got = append(got, lines.Text())
		if strings.HasPrefix(lines.Text(), "data: ") {
			break // the first event: the subscription is live
		}
	}
	s.stop()
	for lines.Scan() {
		got = append(got, lines.Text())
	}
	assert.Error(t, lines.Err(), "the stream is cut, not ended: %q", got)
	stream := strings.Join(got, "\n")
	assert.NotContains(t, stream, "event: complete", "a completed stream is not retried")
	assert.NotContains(t, stream, "internal error")
	s.wait(t)
	logs := s.logs.String()
	assert.False(t, strings.Contains(logs, `"level":"ERROR"`), "an error logged: %.600s", logs[max(strings.Index(logs, `"level":"ERROR"`), 0):])
	assert.False(t, strings.Contains(logs, "superfluous"), "a second WriteHeader")
}
