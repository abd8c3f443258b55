package core

import (
	"fmt"
	"time"
)

func runProducer(c *Client, s *Spec, ctl *Control, out *Out, info ClientInfo) error {
	g, err := newGen(s)
	if err != nil {
		return err
	}
	// the window is set once t0 is known; acks before that cannot happen (nothing is sent)
	a := newAcker(s, 0, 0)
	p, err := c.NewProducer(s, a)
	if err != nil {
		return fmt.Errorf("producer: %v", err)
	}
	out.Line(map[string]any{"type": "ready"})
	t0, started := awaitStart(ctl, out, info, a, s, p.Close)
	if !started {
		return nil
	}
	l := &sendLoop{s: s, p: p, a: a, g: g, ctl: ctl, blocks: c.SendBlocks}
	done := make(chan struct{})
	go statLoop(t0, done, out, &a.meter)
	sleepUntil(t0, ctl.Stop)
	var completed bool
	if s.Rate != nil {
		completed = l.runRate(t0)
	} else {
		completed = l.runMax()
	}
	windowEnd := min(Now(), a.end)
	timeout := FlushTimeout(s)
	if !completed {
		timeout = min(timeout, 3*time.Second)
	}
	unacked := l.flush(timeout)
	close(done)
	closeWithin(p.Close, 3*time.Second)
	out.Line(l.result(info, windowEnd, unacked, !completed))
	return nil
}

func (l *sendLoop) result(info ClientInfo, windowEnd, unacked int64, early bool) ProducerResult {
	a := l.a
	a.mu.Lock()
	defer a.mu.Unlock()
	pub := Encode(a.series.Merged())
	svc := pub // at max rate intended = sent: service = publish
	hdrs := map[string]*string{"publish": &pub, "service": &svc, "send_delay": nil}
	if a.rateLimited {
		svc = Encode(a.service)
		sd := Encode(a.sendDelay)
		hdrs["service"], hdrs["send_delay"] = &svc, &sd
	}
	a.series.outOfRange += a.outOfRange
	r := ProducerResult{resultHead: head(info), Role: "producer", Index: l.s.Index,
		SentTotal: l.sent, SentMeasured: l.sentMeas, AckedTotal: a.total, AckedMeasured: a.ackedMeas,
		BytesMeasured: a.bytesMeas, UnackedAtEnd: unacked, QueueFullEvents: a.queueFull.Load(),
		Errors: a.errors, WindowS: max(0, float64(windowEnd-a.start)/1e9), StoppedEarly: early,
		WindowEndNs: windowEnd, LatencySample: 1, Hdr: hdrs, Series: a.series.Doc(windowEnd)}
	if l.s.Verify {
		v := &ProducerVerify{Acks: a.acks, Failed: a.failed, Sent: l.sent}
		if v.Acks == nil {
			v.Acks = [][5]int64{}
		}
		if v.Failed == nil {
			v.Failed = [][3]any{}
		}
		if unacked > 0 {
			seen := map[int64]bool{}
			for _, x := range a.acks {
				seen[x[3]] = true
			}
			for _, f := range a.failed {
				seen[f[1].(int64)] = true
			}
			for q := int64(0); q < l.sent; q++ {
				if !seen[q] {
					v.UnackedSeqFrom = &q
					break
				}
			}
		}
		r.Verify = v
	}
	return r
}

// awaitStart waits for the driver's start (t0) and sets the acker's measured window from it; on a stop
// before the start it closes the producer (closer), says so, and returns false.
func awaitStart(ctl *Control, out *Out, info ClientInfo, a *Acker, s *Spec, closer func()) (int64, bool) {
	var t0 int64
	select {
	case t0 = <-ctl.Start:
	case <-ctl.Stop:
		closeWithin(closer, 3*time.Second)
		out.Line(failed(info, "stopped before start"))
		return 0, false
	}
	a.mu.Lock()
	a.start, a.end = t0+s.WarmupNs, t0+s.WarmupNs+s.DurationNs
	a.series = NewSeries(a.start)
	a.mu.Unlock()
	return t0, true
}
