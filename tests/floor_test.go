package tests

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"
)

// floorServerEnv makes the test binary the protocol floor (serveFloor)
// instead of running tests.
const floorServerEnv = "SANDBOXD_BENCH_FLOOR_SERVER"

// serveFloor answers `run` requests as a sandbox driven over a pipe would,
// with no sandbox at all: it reads a request line, decodes it, starts and
// waits for argv as a bare spawn does, and writes a reply line. What a run
// costs through it over the bare spawn is what the protocol alone costs,
// two hops between processes, below any sandbox's own work.
func serveFloor() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req struct {
			ID   any      `json:"id"`
			Argv []string `json:"argv"`
		}
		reply := map[string]any{"id": nil}
		if err := json.Unmarshal(in.Bytes(), &req); err != nil || len(req.Argv) == 0 {
			reply["error"] = map[string]any{"code": "invalid_request", "message": "want a run with argv"}
		} else {
			reply["id"] = req.ID
			start := time.Now()
			err := exec.Command(req.Argv[0], req.Argv[1:]...).Run()
			reply["real_time"] = time.Since(start).Seconds()
			if err != nil {
				reply["error"] = map[string]any{"code": "exec_failed", "message": err.Error()}
			} else {
				reply["limit_verdict"], reply["exit_code"] = "OK", 0
			}
		}
		if err := out.Encode(reply); err != nil {
			os.Exit(1)
		}
	}
}

// startFloorServer starts the protocol floor (serveFloor) as a judge
// starts sandboxd.
func startFloorServer(t *testing.T) *server {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), floorServerEnv+"=1")
	s := &server{t: t, cmd: cmd, freeUIDs: func() {}}
	s.start()
	return s
}
