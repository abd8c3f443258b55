package core

import (
	"context"
	"fmt"
	"time"
)

// Record is one record a client handed to the application.
type Record struct {
	Partition int32
	Offset    int64
	Value     []byte
}

// Consumer is a client adapter's group consumer.
type Consumer interface {
	// Join subscribes and returns once the group gave this member its first assignment. With hold, the
	// adapter must not hand records to the application before the first Poll.
	Join(ctx context.Context, hold bool) error
	// Poll returns the records the client hands over now, waiting at most about 100 ms for some.
	// err counts as an error of the result (named by ErrorName); polling continues.
	Poll(ctx context.Context) ([]Record, error)
	// Lag is high watermark − position summed over the assigned partitions, if the client knows it.
	Lag() (int64, bool)
	Close()
}

// ConsumerResult is the consumer's result line (docs/drivers.md).
type ConsumerResult struct {
	resultHead
	Role        string            `json:"role"`
	Index       int               `json:"index"`
	Group       string            `json:"group"`
	RecvTotal   int64             `json:"received_total"`
	RecvMeas    int64             `json:"received_measured"`
	BytesMeas   int64             `json:"bytes_measured"`
	Errors      map[string]int64  `json:"errors"`
	WindowS     float64           `json:"window_s"`
	WindowEndNs int64             `json:"window_end_ns"`
	JoinS       float64           `json:"join_s"` // from creation: ready means assigned
	ReleasedS   float64           `json:"released_s"`
	FirstNs     *int64            `json:"first_receive_ns"`
	LastNs      *int64            `json:"last_receive_ns"`
	Lag         [][2]any          `json:"lag"` // [seconds since t0, lag]
	Hdr         map[string]string `json:"hdr"`
	Series      SeriesDoc         `json:"series"`
	Verify      *[][4]int64       `json:"verify"` // every record read: partition, offset, producer, seq
}

type receiver struct {
	meter      // series: e2e latencies; total: records received
	start, end int64
	errors     map[string]int64
	first      *int64
	lastNs     int64
	verify     *[][4]int64
}

func (r *receiver) take(recs []Record, now int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.first == nil {
		f := now
		r.first = &f
	}
	r.lastNs = now
	r.total += int64(len(recs))
	in := now >= r.start && now < r.end
	for i := range recs {
		v := recs[i].Value
		t, prod, seq, ok := ParseHeader(v)
		if r.verify != nil {
			p, q := int64(-1), int64(-1)
			if ok {
				p, q = int64(prod), seq
			}
			*r.verify = append(*r.verify, [4]int64{int64(recs[i].Partition), recs[i].Offset, p, q})
		}
		if !in {
			continue
		}
		lat := int64(-1)
		if ok {
			lat = (now - t) / 1000
		}
		r.series.Add(now, len(v), lat)
	}
}

func runConsumer(c *Client, s *Spec, ctl *Control, out *Out, info ClientInfo) error {
	cons, err := c.NewConsumer(s)
	if err != nil {
		return fmt.Errorf("consumer: %v", err)
	}
	defer closeWithin(cons.Close, 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-ctl.Stop; cancel() }()
	created := Now()
	if err := cons.Join(ctx, s.WaitForConsume); err != nil {
		if ctx.Err() != nil {
			out.Line(failed(info, "stopped before assignment"))
			return nil
		}
		return fmt.Errorf("join: %v", err)
	}
	joined := Now()
	out.Line(readyLine(s))
	var t0 int64
	select {
	case t0 = <-ctl.Start:
	case <-ctl.Stop:
		out.Line(failed(info, "stopped before start"))
		return nil
	}
	if s.WaitForConsume {
		select {
		case <-ctl.Consume:
		case <-ctl.Stop:
		}
	}
	released := Now()
	rx := &receiver{meter: meter{series: NewSeries(t0 + s.WarmupNs)}, start: t0 + s.WarmupNs,
		end: t0 + s.WarmupNs + s.DurationNs, errors: map[string]int64{}}
	if s.Verify {
		reads := [][4]int64{}
		rx.verify = &reads
	}
	lag := pollLoop(ctx, cons, rx, t0, out)
	end := max(rx.start, min(Now(), rx.end))
	r := ConsumerResult{resultHead: head(info), Role: "consumer", Index: s.Index,
		Group: *s.Group, Errors: rx.errors, WindowS: max(0, float64(end-rx.start)/1e9), WindowEndNs: end,
		ReleasedS: float64(released-t0) / 1e9, FirstNs: rx.first, Lag: lag, Hdr: map[string]string{"e2e": Encode(rx.series.Merged())},
		Series: rx.series.Doc(end), RecvTotal: rx.total, Verify: rx.verify, JoinS: float64(joined-created) / 1e9}
	for i := range r.Series.Count {
		r.RecvMeas += r.Series.Count[i]
		r.BytesMeas += r.Series.Bytes[i]
	}
	if rx.first != nil {
		l := rx.lastNs
		r.LastNs = &l
	}
	out.Line(r)
	return nil
}

func pollLoop(ctx context.Context, cons Consumer, rx *receiver, t0 int64, out *Out) [][2]any {
	lag := [][2]any{}
	lastStat := Now()
	for ctx.Err() == nil {
		recs, err := cons.Poll(ctx)
		now := Now()
		if err != nil && ctx.Err() == nil {
			rx.mu.Lock()
			rx.errors[ErrorName(err)]++
			rx.series.Error(now)
			rx.mu.Unlock()
		}
		if len(recs) > 0 {
			rx.take(recs, now)
		}
		if now-lastStat >= 1_000_000_000 {
			lastStat = now
			if l, ok := cons.Lag(); ok {
				lag = append(lag, [2]any{float64((now-t0)/1_000_000) / 1000, l})
			}
			rx.writeStat(out, t0, now)
		}
	}
	return lag
}
