package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// serveLines runs Serve on input with a handler that answers "echo" and fails "boom", and
// returns the output lines.
func serveLines(t *testing.T, input string) []map[string]any {
	t.Helper()
	var out strings.Builder
	h := func(_ context.Context, req *Request) (any, func(), error) {
		switch req.Method {
		case "echo":
			p := map[string]any{}
			if err := req.DecodeParams(&p); err != nil {
				return nil, nil, err
			}
			return p, nil, nil
		case "boom":
			return nil, nil, errors.New("it broke")
		}
		return nil, nil, Errorf(CodeBadRequest, "unknown method %q", req.Method)
	}
	if err := Serve(context.Background(), strings.NewReader(input), NewWriter(&out), h); err != nil {
		t.Fatalf("serve: %v", err)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

func errorCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func TestServeAnswersEveryRequest(t *testing.T) {
	long := `{"id": 5, "method": "echo", "params": {"x": "` + strings.Repeat("a", MaxLineBytes) + `"}}`
	input := strings.Join([]string{
		`not json`,
		`{"id": 1, "method": "nope"}`,
		``,
		`{"id": "two", "method": "echo", "params": {"a": 1}}`,
		`{"id": 3, "method": "boom"}`,
		`{"id": 4}`,
		long,
		`{"id": 6, "method": "echo", "params": [1]}`,
		`{"id": 7, "method": "echo"}`, // last line without a newline
	}, "\n")
	lines := serveLines(t, input)
	want := []struct {
		id   any
		code string
	}{
		{nil, CodeBadRequest},
		{1.0, CodeBadRequest},
		{"two", ""},
		{3.0, CodeInternal},
		{4.0, CodeBadRequest},
		{nil, CodeBadRequest},
		{6.0, CodeBadRequest},
		{7.0, ""},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d answers, want %d: %v", len(lines), len(want), lines)
	}
	for i, w := range want {
		if lines[i]["id"] != w.id || errorCode(lines[i]) != w.code {
			t.Errorf("answer %d = %v, want id %v code %q", i, lines[i], w.id, w.code)
		}
		if w.code == "" && lines[i]["result"] == nil {
			t.Errorf("answer %d has no result: %v", i, lines[i])
		}
	}
	if got := lines[2]["result"].(map[string]any)["a"]; got != 1.0 {
		t.Errorf("echo result %v", lines[2])
	}
}

func TestAfterRunsOnceTheAnswerIsWritten(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	w := NewWriter(outW)
	h := func(context.Context, *Request) (any, func(), error) {
		return map[string]string{"sdp": "x"}, func() { _ = w.Send(map[string]string{"event": "candidate"}) }, nil
	}
	go func() { _ = Serve(context.Background(), inR, w, h); _ = outW.Close() }()
	events := make(chan Event, 1)
	c := NewClient(outR, inW, func(ev Event) { events <- ev })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var res struct{ SDP string }
	if err := c.Call(ctx, "publish", nil, &res); err != nil || res.SDP != "x" {
		t.Fatalf("call: %v %v", res, err)
	}
	select {
	case ev := <-events:
		if ev.Event != "candidate" {
			t.Fatalf("event %v", ev)
		}
	case <-ctx.Done():
		t.Fatal("no event after the answer")
	}
	_ = inW.Close()
	<-c.Done()
	if err := c.Call(ctx, "stats", nil, nil); err == nil {
		t.Fatal("call after the output ended succeeded")
	}
}
