package core

import (
	"math/rand"
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
	// Send hands r to the client, which passes a pointer to its own copy to Acker.Ack. It may block for
	// buffer space (call Acker.QueueFull then). An error means the client refused r locally: it was not
	// sent and will not be acked.
	Send(r Rec) error
	// Flush asks the client to send what it buffers (acks still arrive through Acker.Ack).
	Flush()
	// Close releases the client; in-flight records may be failed.
	Close()
}

// Acker receives acks from any goroutine and keeps the producer's counts, histograms and series.
type Acker struct {
	meter       // total: acked records
	rateLimited bool
	verify      bool
	producer    int
	start, end  int64          // window
	service     *hdr.Histogram // rate-limited only: at max rate service = publish
	sendDelay   *hdr.Histogram // rate-limited only
	outOfRange  int64          // of the whole-run histograms
	ackedMeas   int64
	bytesMeas   int64
	done        int64 // acked or failed
	errors      map[string]int64
	acks        [][5]int64
	failed      [][3]any
	queueFull   atomic.Int64
}

func newAcker(s *Spec, start, end int64) *Acker {
	a := &Acker{meter: meter{series: NewSeries(start)}, rateLimited: s.Rate != nil, verify: s.Verify,
		producer: s.Index, start: start, end: end, errors: map[string]int64{}}
	if a.rateLimited {
		a.service, a.sendDelay = NewHist(), NewHist()
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
	a.ack(now, r, partition, offset, err)
}

// AckBatch records n outcomes that arrived together (one produce response, or the delivery reports
// waiting in a channel): one clock reading, one lock. rec(i) gives record i, its partition, offset and
// error.
func (a *Acker) AckBatch(n int, rec func(i int) (*Rec, int32, int64, error)) {
	now := Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := 0; i < n; i++ {
		r, partition, offset, err := rec(i)
		a.ack(now, r, partition, offset, err)
	}
}

func (a *Acker) ack(now int64, r *Rec, partition int32, offset int64, err error) {
	a.done++
	if err != nil {
		a.errors[ErrorName(err)]++
		a.series.Error(now)
		if a.verify {
			a.failed = append(a.failed, [3]any{a.producer, r.Seq, ErrorName(err)})
		}
		return
	}
	a.total++
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
	a.series.Add(now, len(r.Value), (now-r.Intended)/1000)
	if a.rateLimited {
		if a.service.RecordValue((now-r.Sent)/1000) != nil {
			a.outOfRange++
		}
		if a.sendDelay.RecordValue((r.Sent-r.Intended)/1000) != nil {
			a.outOfRange++
		}
	}
}

// doneCount is the number of records acked or failed so far.
func (a *Acker) doneCount() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.done
}

// gen builds message values: the header, then pool bytes. Values are cut from 64 KiB slabs (one
// allocation per slab, not per message; a slab is freed once all its messages are acked).
type gen struct {
	sizer *Sizer
	pool  *Pool
	keys  *Keys
	index uint16
	slab  []byte
}

const slabSize = 64 << 10

func (g *gen) alloc(n int) []byte {
	if n > slabSize/4 {
		return make([]byte, n)
	}
	if len(g.slab) < n {
		g.slab = make([]byte, slabSize)
	}
	v := g.slab[:n:n]
	g.slab = g.slab[n:]
	return v
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

// rec builds message seq intended at intended (0: at max rate, set when sent).
func (g *gen) rec(seq, intended int64) Rec {
	v := g.alloc(g.sizer.Next())
	PutHeader(v, intended, g.index, seq)
	g.pool.Fill(v[HeaderSize:])
	return Rec{Key: g.keys.Next(), Value: v, Seq: seq, Intended: intended}
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
