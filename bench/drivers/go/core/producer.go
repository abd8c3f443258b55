package core

import (
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Rec is one message handed to a client: the adapter passes it back to Acker.Ack exactly once.
type Rec struct {
	Key, Value []byte
	Seq        int64
	Intended   int64 // CLOCK_MONOTONIC ns
	Sent       int64
}

// Producer is a client adapter's producer.
type Producer interface {
	// Send hands r to the client. It may block for buffer space (call Acker.QueueFull first). An error
	// means the client refused r locally: it was not sent and will not be acked.
	Send(r *Rec) error
	// Flush asks the client to send what it buffers (acks still arrive through Acker.Ack).
	Flush()
	// Close releases the client; in-flight records may be failed.
	Close()
}

// Acker receives acks from any goroutine and keeps the producer's counts, histograms and series.
type Acker struct {
	mu          sync.Mutex
	rateLimited bool
	verify      bool
	producer    int
	start, end  int64 // window
	publish     *hdr.Histogram
	service     *hdr.Histogram
	sendDelay   *hdr.Histogram
	series      *Series
	ackedTotal  int64
	ackedMeas   int64
	bytesMeas   int64
	errors      map[string]int64
	acks        [][5]int64
	failed      [][3]any
	outstanding atomic.Int64
	queueFull   atomic.Int64
	lastStat    int64 // count at the last stat
	lastHist    *hdr.Histogram
}

func newAcker(s *Spec, start, end int64) *Acker {
	a := &Acker{rateLimited: s.Rate != nil, verify: s.Verify, producer: s.Index, start: start, end: end,
		publish: NewHist(), service: NewHist(), series: NewSeries(start), errors: map[string]int64{},
		lastHist: NewHist()}
	if a.rateLimited {
		a.sendDelay = NewHist()
	}
	return a
}

// QueueFull counts one refusal for a full buffer.
func (a *Acker) QueueFull() { a.queueFull.Add(1) }

// Ack records the outcome of r; partition and offset are those of the broker's ack (verify mode).
func (a *Acker) Ack(r *Rec, partition int32, offset int64, err error) {
	now := Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.outstanding.Add(-1)
	if err != nil {
		a.errors[ErrorName(err)]++
		a.series.Error(now)
		if a.verify {
			a.failed = append(a.failed, [3]any{a.producer, r.Seq, ErrorName(err)})
		}
		return
	}
	a.ackedTotal++
	if a.verify {
		a.acks = append(a.acks, [5]int64{int64(partition), offset, int64(a.producer), r.Seq, now})
	}
	t := now
	if a.rateLimited {
		t = r.Intended
	}
	if t < a.start || t >= a.end {
		return
	}
	a.ackedMeas++
	a.bytesMeas += int64(len(r.Value))
	pub := (now - r.Intended) / 1000
	if a.publish.RecordValue(pub) != nil {
		a.series.OutOfRange()
	}
	_ = a.lastHist.RecordValue(pub)
	if a.service.RecordValue((now-r.Sent)/1000) != nil {
		a.series.OutOfRange()
	}
	if a.sendDelay != nil && a.sendDelay.RecordValue((r.Sent-r.Intended)/1000) != nil {
		a.series.OutOfRange()
	}
	a.series.Add(now, len(r.Value), pub)
}

// stat returns acks since the last call, the interval's p99 and the total.
func (a *Acker) stat() (int64, *int64, int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.ackedTotal - a.lastStat
	a.lastStat = a.ackedTotal
	var p99 *int64
	if a.lastHist.TotalCount() > 0 {
		v := a.lastHist.ValueAtQuantile(99)
		p99 = &v
	}
	a.lastHist.Reset()
	return n, p99, a.ackedTotal
}

// gen builds message values: the header, then pool bytes.
type gen struct {
	sizer *Sizer
	pool  *Pool
	keys  *Keys
	index uint16
}

func newGen(s *Spec) (*gen, error) {
	rng := rand.New(rand.NewSource(s.Seed + int64(s.Index)))
	sizer, err := NewSizer(s.MessageSize, rng)
	if err != nil {
		return nil, err
	}
	pool, err := NewPool(s.Payload, max(sizer.maxSize, HeaderSize), rng)
	if err != nil {
		return nil, err
	}
	keys, err := NewKeys(s.Keys, s.Index, s.Seed)
	if err != nil {
		return nil, err
	}
	return &gen{sizer: sizer, pool: pool, keys: keys, index: uint16(s.Index)}, nil
}

func (g *gen) rec(seq, intended int64) *Rec {
	v := make([]byte, g.sizer.Next())
	PutHeader(v, intended, g.index, seq)
	g.pool.Fill(v[HeaderSize:])
	return &Rec{Key: g.keys.Next(), Value: v, Seq: seq, Intended: intended}
}

// sleepUntil waits until t (CLOCK_MONOTONIC) or stop; false if stopped. Go's timers wake about 1 ms
// late for sub-millisecond sleeps, so the last 2 ms are a nanosleep system call (about 70 µs late).
func sleepUntil(t int64, stop <-chan struct{}) bool {
	for {
		d := t - Now()
		if d <= 0 {
			return true
		}
		if d > 2_000_000 {
			select {
			case <-stop:
				return false
			case <-time.After(time.Duration(d - 2_000_000)):
			}
			continue
		}
		nanosleep(d)
	}
}
