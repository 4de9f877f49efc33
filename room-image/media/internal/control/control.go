// Package control implements the JSON-lines control protocol shared by the relay and the swarm:
// requests and their answers, events, and a client for tests and benchmarks.
//
// One JSON object per line. A request is {"id", "method", "params"}; its answer carries the same
// id and either "result" or "error" ({"code", "message"}). Events carry "event" and no id.
package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Error codes shared by the relay and the swarm.
const (
	CodeBadRequest    = "bad_request"
	CodeBadSDP        = "bad_sdp"
	CodeTooManyTracks = "too_many_tracks"
	CodeUnknownPeer   = "unknown_peer"
	CodeTooManyPeers  = "too_many_peers"
	CodeInternal      = "internal"
)

// MaxLineBytes bounds one control line. SDPs are a few kilobytes; a longer line is answered with
// bad_request and skipped.
const MaxLineBytes = 1 << 20

// Error is a protocol error: it is answered as {"error": {"code", "message"}}.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the given code.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Request is one request line.
type Request struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

// DecodeParams unmarshals the request's params into v; missing params decode as {}.
func (r *Request) DecodeParams(v any) error {
	if len(r.Params) == 0 || bytes.Equal(r.Params, []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(r.Params, v); err != nil {
		return Errorf(CodeBadRequest, "params: %v", err)
	}
	return nil
}

type response struct {
	ID     json.RawMessage `json:"id"`
	Result any             `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// Writer writes whole JSON lines; it is safe for concurrent use.
type Writer struct {
	mu  sync.Mutex
	buf *bufio.Writer
	err error
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{buf: bufio.NewWriter(w)} }

// Send writes v as one line. After the first write error every call returns that error.
func (w *Writer) Send(v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode control line: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	line = append(line, '\n')
	if _, err := w.buf.Write(line); err != nil {
		w.err = fmt.Errorf("write control line: %w", err)
		return w.err
	}
	if err := w.buf.Flush(); err != nil {
		w.err = fmt.Errorf("flush control line: %w", err)
		return w.err
	}
	return nil
}

// Handler handles one request. It returns the result (nil means {}), or an error (an *Error is
// answered as is, anything else as internal). after, when not nil, runs once the answer is
// written: it lets a handler send events that must follow the answer (trickled candidates).
type Handler func(ctx context.Context, req *Request) (result any, after func(), err error)

// Serve reads requests from r until it ends or ctx is done, calls h for each one in order and
// writes the answers to w. It returns nil when r ends.
func Serve(ctx context.Context, r io.Reader, w *Writer, h Handler) error {
	lines := newLineReader(r)
	for ctx.Err() == nil {
		line, err := lines.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if errors.Is(err, errLineTooLong) {
			if err := w.Send(response{ID: nullID, Error: Errorf(CodeBadRequest, "line longer than %d bytes", MaxLineBytes)}); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("read control input: %w", err)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := serveLine(ctx, line, w, h); err != nil {
			return err
		}
	}
	return nil
}

var nullID = json.RawMessage("null")

func serveLine(ctx context.Context, line []byte, w *Writer, h Handler) error {
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return w.Send(response{ID: nullID, Error: Errorf(CodeBadRequest, "not a JSON request: %v", err)})
	}
	id := req.ID
	if len(id) == 0 {
		id = nullID
	}
	if req.Method == "" {
		return w.Send(response{ID: id, Error: Errorf(CodeBadRequest, "missing method")})
	}
	result, after, err := h(ctx, &req)
	resp := response{ID: id}
	if err != nil {
		var perr *Error
		if !errors.As(err, &perr) {
			perr = &Error{Code: CodeInternal, Message: err.Error()}
		}
		resp.Error = perr
	} else {
		if result == nil {
			result = struct{}{}
		}
		resp.Result = result
	}
	if err := w.Send(resp); err != nil {
		return err
	}
	if after != nil {
		after()
	}
	return nil
}

var errLineTooLong = errors.New("control line too long")

// lineReader splits input into lines of at most MaxLineBytes; an overlong line is skipped whole
// and reported as errLineTooLong.
type lineReader struct {
	r    *bufio.Reader
	line []byte
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10)}
}

func (l *lineReader) next() ([]byte, error) {
	l.line = l.line[:0]
	tooLong := false
	for {
		chunk, err := l.r.ReadSlice('\n')
		if !tooLong {
			if len(l.line)+len(chunk) > MaxLineBytes {
				tooLong = true
				l.line = l.line[:0]
			} else {
				l.line = append(l.line, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if tooLong {
				return nil, errLineTooLong
			}
			if len(l.line) > 0 {
				return l.line, nil
			}
			return nil, io.EOF
		case err != nil:
			return nil, err
		}
		if tooLong {
			return nil, errLineTooLong
		}
		return l.line, nil
	}
}
