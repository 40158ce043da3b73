package downloader

import (
	"fmt"
	"os"
	"testing"
)

// roleEnv makes the test binary play a part in another process instead of
// running tests: a server, a download that is killed, a lock holder.
const roleEnv = "DASHBOARD_BENCH_ROLE"

// roles are filled in by the test files that need another process.
var roles = map[string]func() error{}

func TestMain(m *testing.M) {
	if name := os.Getenv(roleEnv); name != "" {
		role, ok := roles[name]
		if !ok {
			fmt.Fprintln(os.Stderr, "unknown role", name)
			os.Exit(2)
		}
		if err := role(); err != nil {
			fmt.Fprintln(os.Stderr, name+":", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
