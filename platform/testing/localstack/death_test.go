package localstack_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/testing/localstack"
)

// TestHelperOwner is not a test of its own: TestServersDieWithTheirOwner
// runs the test binary again with this test selected, as the owner of a
// stack that it then kills.
func TestHelperOwner(t *testing.T) {
	if os.Getenv("LOCALSTACK_HELPER_OWNER") != "1" {
		return
	}
	s, err := localstack.Start(context.Background(), localstack.Config{RedisCluster: true})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("stack", strings.Join(append([]string{s.RedisAddr}, s.RedisClusterAddrs...), ","), s.Dir())
	select {} // wait to be killed
}

// A test binary killed with SIGKILL cannot run Close: its servers must
// still go (parent-death signal) and its directory must be removed by the
// next Start (stale-directory sweep).
func TestServersDieWithTheirOwner(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperOwner$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LOCALSTACK_HELPER_OWNER=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var redisAddrs []string
	var dir string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "stack" {
			redisAddrs, dir = strings.Split(f[1], ","), f[2]
			break
		}
	}
	if len(redisAddrs) == 0 {
		_ = cmd.Process.Kill()
		t.Fatalf("the owner did not start a stack: %v", sc.Err())
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()

	// The single server and every node of the cluster must go.
	deadline := time.Now().Add(10 * time.Second)
	for _, addr := range redisAddrs {
		for {
			c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
			if err != nil {
				break
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Fatalf("redis-server at %s still answers 10s after its owner was killed", addr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	s, err := localstack.Start(context.Background(), localstack.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the dead owner's directory %s survived the next Start (%v)", dir, err)
	}
}
