package core

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
)

// Protocol is the driver protocol version this process speaks (docs/drivers.md): 1 until a spec asks
// for ProtocolV2 (negotiate).
var Protocol = 1

// SizeSpec is spec.message_size.
type SizeSpec struct {
	Distribution string    `json:"distribution"`
	Value        *float64  `json:"value"`
	Min          *float64  `json:"min"`
	Max          *float64  `json:"max"`
	Mean         *float64  `json:"mean"`
	Stddev       *float64  `json:"stddev"`
	Values       []float64 `json:"values"`
	Weights      []float64 `json:"weights"`
}

// PayloadSpec is spec.payload.
type PayloadSpec struct {
	Kind            string  `json:"kind"`
	Compressibility float64 `json:"compressibility"`
}

// KeySpec is spec.keys.
type KeySpec struct {
	Kind  string  `json:"kind"`
	Count int     `json:"count"`
	ZipfS float64 `json:"zipf_s"`
}

// Spec is the first line the coordinator writes.
type Spec struct {
	Type           string            `json:"type"`
	Protocol       int               `json:"protocol"`
	GroupSpec                        // protocol v2: group_options (group.go)
	TxnSpec                          // protocol v2: transactions, isolation_level (txn.go)
	RecordsSpec                      // protocol v2: records (records.go)
	Role           string            `json:"role"`
	Index          int               `json:"index"`
	Producers      int               `json:"producers"`
	Bootstrap      string            `json:"bootstrap"`
	Topic          string            `json:"topic"`
	ClientConfig   map[string]string `json:"client_config"`
	WarmupNs       int64             `json:"warmup_ns"`
	DurationNs     int64             `json:"duration_ns"`
	Rate           *float64          `json:"rate"`
	MessageSize    SizeSpec          `json:"message_size"`
	Payload        PayloadSpec       `json:"payload"`
	Keys           KeySpec           `json:"keys"`
	Group          *string           `json:"group"`
	WaitForConsume bool              `json:"wait_for_consume"`
	Seed           int64             `json:"seed"`
	Verify         bool              `json:"verify"`
	FlushTimeoutS  float64           `json:"flush_timeout_s"`
	Knobs          Knobs             `json:"-"` // client_config parsed (Client.Knobs)
}

// ClientInfo names the client library in hello and result lines.
type ClientInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Out writes JSON lines to stdout, one object per line, safe for concurrent use.
type Out struct {
	mu sync.Mutex
	w  *bufio.Writer
}

// NewOut writes to w.
func NewOut(w io.Writer) *Out { return &Out{w: bufio.NewWriterSize(w, 1<<16)} }

// Line writes one object and flushes.
func (o *Out) Line(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	_, _ = o.w.Write(b)
	_ = o.w.WriteByte('\n')
	_ = o.w.Flush()
}

// Error writes an error line.
func (o *Out) Error(format string, args ...any) {
	o.Line(map[string]any{"type": "error", "message": fmt.Sprintf(format, args...)})
}

// Control is what the coordinator sends after the spec.
type Control struct {
	Start   chan int64    // t0_ns, once
	Consume chan struct{} // closed on "consume"
	Stop    chan struct{} // closed on "stop" or EOF
}

// ReadSpec reads the first line of stdin and returns the spec and the control channels fed by the rest.
func ReadSpec(r io.Reader) (*Spec, *Control, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	line, err := br.ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return nil, nil, fmt.Errorf("no spec line on stdin: %v", err)
	}
	var s Spec
	dec := json.NewDecoder(bytesReader(line))
	if err := dec.Decode(&s); err != nil {
		return nil, nil, fmt.Errorf("spec: %v", err)
	}
	if s.Type != "spec" {
		return nil, nil, fmt.Errorf("spec: expected type \"spec\" on the first line, got %q", s.Type)
	}
	ctl := &Control{Start: make(chan int64, 1), Consume: make(chan struct{}), Stop: make(chan struct{})}
	go ctl.read(br)
	return &s, ctl, nil
}

func (c *Control) read(br *bufio.Reader) {
	defer close(c.Stop)
	consumed, started := false, false
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			var m struct {
				Type string `json:"type"`
				T0Ns int64  `json:"t0_ns"`
			}
			if json.Unmarshal(line, &m) != nil {
				fmt.Fprintf(os.Stderr, "ignored a line that is not JSON: %q\n", line)
			}
			switch m.Type {
			case "start":
				if !started {
					started = true
					c.Start <- m.T0Ns
				}
			case "consume":
				if !consumed {
					consumed = true
					close(c.Consume)
				}
			case "stop":
				return
			default:
				fmt.Fprintf(os.Stderr, "ignored a line of unknown type %q\n", m.Type)
			}
		}
		if err != nil { // EOF = stop
			return
		}
	}
}
