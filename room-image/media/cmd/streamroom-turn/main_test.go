package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildGateway builds this command into a temporary directory.
func buildGateway(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "streamroom-turn")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func writeSecret(t *testing.T, secret string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The binary starts with the test flags, logs JSON lines, answers /healthz and /metrics, and
// stops cleanly (exit 0) on SIGTERM; it refuses to start without a good secret.
func TestBinary(t *testing.T) {
	bin := buildGateway(t)

	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"no secret file": {nil, "--secret-file is required"},
		"short secret":   {[]string{"--secret-file", writeSecret(t, "short\n")}, "want at least 32"},
		"empty secret":   {[]string{"--secret-file", writeSecret(t, "\n")}, "is empty"},
		"open relay":     {[]string{"--secret-file", writeSecret(t, strings.Repeat("s", 32)), "--allowed-peers", "0.0.0.0/0"}, "open relay"},
	} {
		cmd := exec.Command(bin, append(c.args, "--relay-address", "127.0.0.1", "--listen-address", "127.0.0.1", "--port", "0", "--health-address", "")...)
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), c.want) {
			t.Errorf("%s: exit %v, output %s; want exit 1 and %q", name, err, out, c.want)
		}
	}

	cmd := exec.Command(bin,
		"--secret-file", writeSecret(t, strings.Repeat("s", 40)+"\n"),
		"--listen-address", "127.0.0.1", "--port", "0", "--relay-address", "127.0.0.1",
		"--allowed-peers", "127.0.0.0/8", "--health-address", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	lines := make(chan map[string]any, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = map[string]any{"notJSON": sc.Text()}
			}
			lines <- m
		}
	}()
	next := func(msg string) map[string]any {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case m, ok := <-lines:
				if !ok {
					t.Fatalf("no %q log line", msg)
				}
				if m["notJSON"] != nil {
					t.Errorf("log line is not JSON: %s", m["notJSON"])
				}
				if m["msg"] == msg {
					return m
				}
			case <-timeout:
				t.Fatalf("no %q log line", msg)
			}
		}
	}
	listening := next("TURN gateway listening")
	if listening["udp"] != listening["tcp"] {
		t.Errorf("UDP %v and TCP %v differ", listening["udp"], listening["tcp"])
	}
	health := next("health and metrics listening")["address"].(string)
	for path, want := range map[string]string{"/healthz": "ok\n", "/metrics": "streamroom_turn_allocations 0\n"} {
		resp, err := http.Get("http://" + health + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d %q, want %q", path, resp.StatusCode, body, want)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	next("TURN gateway stopped")
	for m := range lines {
		if m["notJSON"] != nil {
			t.Errorf("log line is not JSON: %s", m["notJSON"])
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}
