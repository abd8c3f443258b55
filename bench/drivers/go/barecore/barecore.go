// Package barecore holds the few lines the bare produce loops share: flags, the window, the report.
// A bare loop produces values shaped as the driver's (Values) as fast as the client accepts and counts
// acks, nothing else.
package barecore

import (
	"encoding/json"
	"flag"
	"math/rand"
	"os"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	"kbench/drivers/core"
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
	prof := flag.String("cpuprofile", "", "write a pprof CPU profile of the whole run here (Report stops it)")
	flag.Parse()
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			panic(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			panic(err)
		}
	}
	return Args{Brokers: strings.Split(*b, ","), Topic: *t, Size: *s, Acks: *a, Warmup: *w, Measure: *m}
}

// Values slices message values one after the other from a 4 MiB pool, without copying. Each value is
// shaped as the driver's are: the 16-byte kbench header (core.PutHeader: a send time stepping 1 µs a
// value, producer 0, the value's sequence number), then random bytes. A compressing client (franz-go
// compresses with snappy by default and sends a batch compressed only when that is shorter) must see the
// same bytes from both: from pure random values it sends batches uncompressed, from the driver's it
// sends them compressed (the headers repeat about 10 of their 16 bytes record to record), which costs
// the client and the broker work that is not the driver's. One value reused for every record would let
// it shrink each batch to almost nothing.
type Values struct {
	pool []byte
	size int
	off  int
}

// NewValues returns values of size bytes.
func NewValues(size int) *Values {
	n := max(1, (4<<20)/size)
	pool := make([]byte, n*size)
	_, _ = rand.New(rand.NewSource(1)).Read(pool)
	if size >= core.HeaderSize {
		t0 := core.Now()
		for i := 0; i < n; i++ {
			core.PutHeader(pool[i*size:], t0+int64(i)*1000, 0, int64(i))
		}
	}
	return &Values{pool: pool, size: size}
}

// Next is the next value.
func (v *Values) Next() []byte {
	if v.off+v.size > len(v.pool) {
		v.off = 0
	}
	b := v.pool[v.off : v.off+v.size : v.off+v.size]
	v.off += v.size
	return b
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

// Report writes one JSON line (and ends the CPU profile, if any).
func (c *Counter) Report(a Args, sent int64) {
	pprof.StopCPUProfile()
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"acked_measured": c.Measured.Load(),
		"acked_total": c.Total.Load(), "errors": c.Errors.Load(), "sent": sent, "window_s": a.Measure.Seconds(),
		"bytes_measured": c.Measured.Load() * int64(a.Size)})
}
