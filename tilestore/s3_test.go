package tilestore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tessera-fe/tessera/aggregate"
)

// s3Server is a versitygw process serving a temporary directory over S3 on
// 127.0.0.1, with one bucket.
type s3Server struct {
	endpoint string // http://127.0.0.1:PORT
	bucket   string
	prefixes atomic.Int64
}

const (
	s3Access = "tessera-test-access"
	s3Secret = "tessera-test-secret-key"
	s3Bucket = "tiles"
)

// startS3 starts versitygw for the test and sets the AWS environment the
// store reads its credentials from. It skips the test when versitygw is not
// on PATH and CI is unset; in CI a missing binary fails the test.
func startS3(t *testing.T) *s3Server {
	t.Helper()
	bin, err := exec.LookPath("versitygw")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("versitygw is not on PATH: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
		}
		t.Fatalf("CI is set but versitygw is not on PATH (%v): .ci/run installs it", err)
	}
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, s3Bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", s3Access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3Secret)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(root, "no-aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(root, "no-aws-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	var lastErr error
	for range 3 { // a free port can be taken between probing and listening
		addr, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		var log strings.Builder
		cmd := exec.Command(bin, "--access", s3Access, "--secret", s3Secret, "--region", "us-east-1",
			"--port", addr, "--quiet", "posix", root)
		cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID=", "ROOT_SECRET_ACCESS_KEY=")
		cmd.Stdout, cmd.Stderr = &lockedWriter{w: &log}, &lockedWriter{w: &log}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start versitygw: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if err := waitListening(addr, exited, 15*time.Second); err != nil {
			_ = cmd.Process.Kill()
			lastErr = fmt.Errorf("%w; output:\n%s", err, log.String())
			continue
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
		return &s3Server{endpoint: "http://" + addr, bucket: s3Bucket}
	}
	t.Fatalf("versitygw did not start: %v", lastErr)
	return nil
}

// location returns the URL of a fresh, empty store on the server.
func (srv *s3Server) location(t *testing.T) string {
	prefix := fmt.Sprintf("t%03d-%s", srv.prefixes.Add(1), strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()))
	q := url.Values{"endpoint": {srv.endpoint}, "use_path_style": {"true"}, "region": {"us-east-1"}}
	return "s3://" + srv.bucket + "/" + prefix + "?" + q.Encode()
}

func (srv *s3Server) open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), srv.location(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// waitListening waits until addr accepts connections, the process exits or
// the timeout passes.
func waitListening(addr string, exited <-chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("versitygw exited: %v", err)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("versitygw not listening on %s after %v", addr, timeout)
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestS3 runs the acceptance suite against a real S3-compatible server.
func TestS3(t *testing.T) {
	srv := startS3(t)
	testAcceptance(t, srv.open)
	t.Run("ConditionalCreate", func(t *testing.T) { testConditionalCreate(t, srv.open(t)) })
}

// testConditionalCreate checks the primitive the commit protocol rests on:
// of several writers creating one key at once, exactly one succeeds and the
// others get errExists, and the object holds the winner's bytes.
func testConditionalCreate(t *testing.T, s *Store) {
	ctx := context.Background()
	const racers = 8
	for round := range 5 {
		key := fmt.Sprintf("race/%d.json", round)
		var (
			wg     sync.WaitGroup
			wins   atomic.Int64
			mu     sync.Mutex
			winner string
			other  []error
		)
		start := make(chan struct{})
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := fmt.Sprintf(`{"writer": %d}`, i)
				<-start
				err := s.put.create(ctx, key, []byte(body))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins.Add(1)
					winner = body
				case !errors.Is(err, errExists):
					other = append(other, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(other) > 0 {
			t.Fatalf("round %d: create failed other than with errExists: %v", round, errors.Join(other...))
		}
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d of %d racing creates succeeded, want exactly 1", round, wins.Load(), racers)
		}
		got, err := s.bucket.ReadAll(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != winner {
			t.Fatalf("round %d: object holds %s, the winning create wrote %s", round, got, winner)
		}
		// A later create of an existing key fails too.
		if err := s.put.create(ctx, key, []byte("late")); !errors.Is(err, errExists) {
			t.Fatalf("round %d: create of an existing key returned %v, want errExists", round, err)
		}
	}
	// Two racing commits on one tile set: both publish, one of them after
	// retrying on the other's version; nothing is lost.
	needs := aggregate.NeedCount
	id := "race-commit"
	mustCommit(t, s, Commit{TileSet: id, Needs: needs, Grid: hourGrid, Cover: Range{0, hour}})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := int64(i + 1)
			_, errs[i] = s.Commit(ctx, Commit{TileSet: id, Needs: needs, Grid: hourGrid, Cover: Range{h * hour, (h + 1) * hour},
				Tiles: setOf(needs, false, []row{{IntKey: h, Start: h * hour, State: aggregate.State{Count: h}}})})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	m, err := s.Manifest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 3 {
		t.Fatalf("after two racing commits: version %d, want 3", m.Version)
	}
	equalRows(t, "racing commits", mustLoad(t, s, id, everything, nil), []row{
		{IntKey: 1, Start: hour, State: aggregate.State{Count: 1}},
		{IntKey: 2, Start: 2 * hour, State: aggregate.State{Count: 2}},
	})
}
