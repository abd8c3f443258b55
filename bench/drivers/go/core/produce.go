package core

import (
	"context"
	"errors"
	"strings"
	"time"
)

// NamedError gives an error the name counted in result.errors.
type NamedError struct {
	Name string
	Err  error
}

func (e *NamedError) Error() string { return e.Name + ": " + e.Err.Error() }
func (e *NamedError) Unwrap() error { return e.Err }

// ErrorName is the key of err in result.errors.
func ErrorName(err error) string {
	var ne *NamedError
	if errors.As(err, &ne) {
		return ne.Name
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed_out"
	}
	s := err.Error()
	if i := strings.IndexByte(s, ':'); i > 0 && i < 60 {
		s = s[:i]
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

// ProducerResult is the producer's result line (docs/drivers.md).
type ProducerResult struct {
	resultHead
	Role            string             `json:"role"`
	Index           int                `json:"index"`
	SentTotal       int64              `json:"sent_total"`
	SentMeasured    int64              `json:"sent_measured"`
	AckedTotal      int64              `json:"acked_total"`
	AckedMeasured   int64              `json:"acked_measured"`
	BytesMeasured   int64              `json:"bytes_measured"`
	UnackedAtEnd    int64              `json:"unacked_at_end"`
	QueueFullEvents int64              `json:"queue_full_events"`
	Errors          map[string]int64   `json:"errors"`
	WindowS         float64            `json:"window_s"`
	StoppedEarly    bool               `json:"stopped_early"`
	WindowEndNs     int64              `json:"window_end_ns"`
	LatencySample   int                `json:"latency_sample"`
	ErrorsEstimated bool               `json:"errors_estimated"`
	Hdr             map[string]*string `json:"hdr"`
	Series          SeriesDoc          `json:"series"`
	Verify          *ProducerVerify    `json:"verify"`
}

// ProducerVerify is the verify-mode record of a producer.
type ProducerVerify struct {
	Acks           [][5]int64 `json:"acks"`
	Failed         [][3]any   `json:"failed"`
	UnackedSeqFrom *int64     `json:"unacked_seq_from"`
	Sent           int64      `json:"sent"`
}

type sendLoop struct {
	s        *Spec
	p        Producer
	a        *Acker
	g        *gen
	ctl      *Control
	sent     int64
	sentMeas int64
	blocks   bool // count slow Sends as queue-full events (Client.SendBlocks)
}

const blockedNs = 200_000

// send hands message seq to the client; intended 0 means max rate (intended = sent = now).
func (l *sendLoop) send(seq, intended, now int64) {
	r := l.g.rec(seq, intended)
	r.Sent = now
	if intended == 0 {
		r.Intended = now
		PutHeader(r.Value, now, l.g.index, seq)
	}
	l.sent++
	if r.Intended >= l.a.start && r.Intended < l.a.end {
		l.sentMeas++
	}
	if err := l.p.Send(r); err != nil {
		l.a.Ack(&r, -1, -1, err)
	}
}

// runRate sends message n at t0 + offset + n·interval until the window ends; false if stopped.
func (l *sendLoop) runRate(t0 int64) bool {
	interval := int64(1e9 / *l.s.Rate)
	if interval < 1 {
		interval = 1
	}
	offset := interval * int64(l.s.Index) / int64(max(1, l.s.Producers))
	end := l.a.end
	for n := int64(0); ; n++ {
		due := t0 + offset + n*interval
		if due >= end {
			return true
		}
		if n&63 == 0 || due > Now() {
			select {
			case <-l.ctl.Stop:
				return false
			default:
			}
			if !sleepUntil(due, l.ctl.Stop) {
				return false
			}
		}
		now := Now()
		l.send(n, due, now)
		if l.blocks && Now()-now > blockedNs { // Send waited for buffer space
			l.a.QueueFull()
		}
	}
}

// runMax sends as fast as the client accepts until the window ends; false if stopped.
func (l *sendLoop) runMax() bool {
	end := l.a.end
	prev := Now()
	for n := int64(0); ; n++ {
		if n&255 == 0 {
			select {
			case <-l.ctl.Stop:
				return false
			default:
			}
		}
		now := Now()
		if now >= end {
			return true
		}
		if l.blocks && now-prev > blockedNs { // the last Send waited for buffer space
			l.a.QueueFull()
		}
		prev = now
		l.send(n, 0, now)
	}
}

// flush waits for the outstanding acks, at most timeout.
func (l *sendLoop) flush(timeout time.Duration) int64 {
	l.p.Flush()
	deadline := Now() + int64(timeout)
	for l.a.doneCount() < l.sent && Now() < deadline {
		time.Sleep(time.Millisecond)
	}
	return max(0, l.sent-l.a.doneCount())
}
