package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Event is an event line; the fields a given event does not use stay empty.
type Event struct {
	Event     string          `json:"event"`
	Peer      string          `json:"peer,omitempty"`
	State     string          `json:"state,omitempty"`
	Candidate json.RawMessage `json:"candidate,omitempty"`
	UDPPort   int             `json:"udpPort,omitempty"`
	TCPPort   int             `json:"tcpPort,omitempty"`
}

// Client speaks the protocol from the driver's side (tests, benchmarks).
type Client struct {
	w       *Writer
	onEvent func(Event)

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan clientResponse
	err     error
	done    chan struct{}
}

type clientResponse struct {
	Result json.RawMessage `json:"result"`
	Error  *Error          `json:"error"`
}

// NewClient starts reading answers and events from r. onEvent is called for each event, in order,
// on the reading goroutine: it must not block on the client.
func NewClient(r io.Reader, w io.Writer, onEvent func(Event)) *Client {
	c := &Client{
		w:       NewWriter(w),
		onEvent: onEvent,
		pending: map[int64]chan clientResponse{},
		done:    make(chan struct{}),
	}
	go c.read(r)
	return c
}

// Done is closed when the other side's output ends.
func (c *Client) Done() <-chan struct{} { return c.done }

func (c *Client) read(r io.Reader) {
	defer close(c.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes)
	for sc.Scan() {
		var head struct {
			ID    *int64 `json:"id"`
			Event string `json:"event"`
		}
		line := sc.Bytes()
		if err := json.Unmarshal(line, &head); err != nil {
			continue
		}
		if head.Event != "" {
			var ev Event
			if err := json.Unmarshal(line, &ev); err == nil && c.onEvent != nil {
				c.onEvent(ev)
			}
			continue
		}
		if head.ID == nil {
			continue
		}
		var resp clientResponse
		if err := json.Unmarshal(line, &resp); err != nil {
			resp.Error = Errorf(CodeInternal, "undecodable answer: %v", err)
		}
		c.mu.Lock()
		ch := c.pending[*head.ID]
		delete(c.pending, *head.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- resp
		}
	}
	err := sc.Err()
	if err == nil {
		err = io.EOF
	}
	c.mu.Lock()
	c.err = fmt.Errorf("control output ended: %w", err)
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

// Call sends a request and waits for its answer. An error answer is returned as *Error; result,
// when not nil, receives the decoded result.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	raw, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("encode %s params: %w", method, err)
	}
	ch := make(chan clientResponse, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()

	idRaw, _ := json.Marshal(id)
	if err := c.w.Send(Request{ID: idRaw, Method: method, Params: raw}); err != nil {
		c.forget(id)
		return err
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return c.closedErr()
		}
		if resp.Error != nil {
			return resp.Error
		}
		if result != nil {
			if err := json.Unmarshal(resp.Result, result); err != nil {
				return fmt.Errorf("decode %s result: %w", method, err)
			}
		}
		return nil
	case <-ctx.Done():
		c.forget(id)
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

func (c *Client) forget(id int64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func (c *Client) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return errors.New("control output ended")
}
