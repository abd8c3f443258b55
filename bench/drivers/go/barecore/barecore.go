// Package barecore holds the few lines the bare produce loops share: flags, the window, the report.
// A bare loop produces one fixed value as fast as the client accepts and counts acks, nothing else.
package barecore

import (
	"encoding/json"
	"flag"
	"math/rand"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Args are the bare loop's flags.
type Args struct {
	Brokers []string
	Topic   string
	Size    int
	Acks    string
	Warmup  time.Duration
	Measure time.Duration
}

// Parse reads the flags.
func Parse() Args {
	b := flag.String("bootstrap", "127.0.0.1:9092", "host:port[,host:port]")
	t := flag.String("topic", "", "topic")
	s := flag.Int("size", 100, "value bytes")
	a := flag.String("acks", "1", "0, 1 or all")
	w := flag.Duration("warmup", time.Second, "warm-up")
	m := flag.Duration("duration", 5*time.Second, "measured time")
	flag.Parse()
	return Args{Brokers: strings.Split(*b, ","), Topic: *t, Size: *s, Acks: *a, Warmup: *w, Measure: *m}
}

// Value is one random (incompressible) value, reused for every message: the driver's payload is
// random too, and zeros would compress to nothing (franz-go compresses with snappy by default).
func Value(size int) []byte {
	v := make([]byte, size)
	_, _ = rand.New(rand.NewSource(1)).Read(v)
	return v
}

// Counter counts acks inside the measured window.
type Counter struct {
	start, end time.Time
	Measured   atomic.Int64
	Total      atomic.Int64
	Errors     atomic.Int64
}

// NewCounter starts the window after the warm-up.
func NewCounter(a Args) *Counter {
	now := time.Now()
	return &Counter{start: now.Add(a.Warmup), end: now.Add(a.Warmup + a.Measure)}
}

// Ack counts one ack (err: a failed record).
func (c *Counter) Ack(err error) {
	if err != nil {
		c.Errors.Add(1)
		return
	}
	c.Total.Add(1)
	if now := time.Now(); now.After(c.start) && now.Before(c.end) {
		c.Measured.Add(1)
	}
}

// Done says whether the window is over.
func (c *Counter) Done() bool { return time.Now().After(c.end) }

// Report writes one JSON line.
func (c *Counter) Report(a Args, sent int64) {
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"acked_measured": c.Measured.Load(),
		"acked_total": c.Total.Load(), "errors": c.Errors.Load(), "sent": sent, "window_s": a.Measure.Seconds(),
		"bytes_measured": c.Measured.Load() * int64(a.Size)})
}
