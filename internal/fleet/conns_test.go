package fleet_test

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// connsTo counts the TCP connections among a process's descriptors (fds,
// from /proc/<pid>/fd) whose remote end is port on loopback: its sockets'
// inodes, looked up in /proc/<pid>/net/tcp. Errors count as none.
func connsTo(pid int, fds []os.DirEntry, port int) int {
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return 0
	}
	remote := fmt.Sprintf("0100007F:%04X", port) // 127.0.0.1, as the kernel writes it
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		f := strings.Fields(line)
		if len(f) > 9 && f[2] == remote && inodes[f[9]] {
			n++
		}
	}
	return n
}

// TestConnsTo: the soak's count of a replica's connections to Redis counts
// this process's connections to a loopback port, and no others.
func TestConnsTo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	other, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer other.Close()
	for _, l := range []net.Listener{ln, ln, ln, other} {
		c, err := net.Dial("tcp", l.Addr().String())
		require.NoError(t, err)
		defer c.Close()
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", os.Getpid()))
	require.NoError(t, err)
	require.Equal(t, 3, connsTo(os.Getpid(), fds, ln.Addr().(*net.TCPAddr).Port))
}
