// Package redistest starts a private redis-server on 127.0.0.1 for
// integration tests.
package redistest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Start runs redis-server on a free 127.0.0.1 port with its data in a
// temporary directory, persistence set to fsync every write, and returns its
// redis:// URL. The server stops when the test ends. Without redis-server on
// PATH the test is skipped, unless CI is set, where it fails.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed; .ci/run installs it (apt-get install redis-server)")
		}
		t.Skip("redis-server is not installed (apt-get install redis-server); CI runs this test")
	}
	dir := t.TempDir()
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir,
			"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "yes")
		cmd.Stdout, cmd.Stderr = nil, nil
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("redis-%d.log", attempt)))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if waitListening(addr, done) {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-done
				logf.Close()
			})
			return "redis://" + addr + "/0"
		}
		_ = cmd.Process.Kill()
		<-done
		logf.Close()
	}
	t.Fatal("redis-server did not start on a free port after 5 attempts")
	return ""
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitListening(addr string, exited <-chan struct{}) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
