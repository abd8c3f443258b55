package core

import (
	"context"
	"sync"
	"time"
)

// Handoff is the one FIFO between a client's consuming goroutines (sarama's ConsumeClaim, kafka-go's
// partition readers) and the driver's poll loop, for a protocol v2 group consumer (docs/drivers.md,
// "Protocol v2"). It carries records and rebalance notices in the order they were sent, so a notice runs
// (writes its event) after every record sent before it was handed over and before any record sent after
// it; the sender of a notice waits until it ran, as the client waits for a rebalance callback. Notices run
// only inside Poll or Join, between batches: the events' read counts are exact. A buffer between the
// client and the poll loop without the notices in it would hand over records of a revoked partition after
// the revocation's event.
type Handoff struct {
	items  chan handItem
	closed chan struct{}
	once   sync.Once
	held   *notice  // met while a batch was being taken: it runs at the start of the next Poll
	early  []Record // taken by Join after the first assignment's notice (handed over by the first Poll)
}

type handItem struct {
	rec    Record
	notice *notice
}

type notice struct {
	run  func()
	done chan struct{}
}

// NewHandoff buffers up to size items between the client and the poll loop.
func NewHandoff(size int) *Handoff {
	return &Handoff{items: make(chan handItem, size), closed: make(chan struct{})}
}

// Send queues one record; false once ctx is done or the handoff closed (the record is dropped: it was
// never handed to the application).
func (h *Handoff) Send(ctx context.Context, r Record) bool {
	select {
	case h.items <- handItem{rec: r}:
		return true
	case <-ctx.Done():
		return false
	case <-h.closed:
		return false
	}
}

// Notify queues fn for the poll loop and waits until it ran. After Close it returns at once (fn may never
// run: the poll loop has ended and no event is written any more).
func (h *Handoff) Notify(fn func()) {
	n := &notice{run: fn, done: make(chan struct{})}
	select {
	case h.items <- handItem{notice: n}:
	case <-h.closed:
		return
	}
	select {
	case <-n.done:
	case <-h.closed:
	}
}

func (n *notice) handle() {
	n.run()
	close(n.done)
}

// Join runs the notices that come until ready is closed (by the first assignment's notice) or ctx ends.
func (h *Handoff) Join(ctx context.Context, ready <-chan struct{}) error {
	for {
		select {
		case <-ready:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case it := <-h.items:
			if it.notice != nil {
				it.notice.handle()
			} else {
				h.early = append(h.early, it.rec)
			}
		}
	}
}

// Poll runs the notices waiting at the front, then takes records for at most PollWait (up to PollRecords),
// ending the batch before the next notice; an error from errs ends a wait without records.
func (h *Handoff) Poll(ctx context.Context, errs <-chan error) ([]Record, error) {
	if h.held != nil {
		h.held.handle()
		h.held = nil
	}
	out := h.early
	h.early = nil
	t := time.NewTimer(PollWait)
	defer t.Stop()
	for len(out) < PollRecords {
		var it handItem
		if len(out) == 0 {
			select {
			case it = <-h.items:
			case err := <-errs:
				return nil, err
			case <-t.C:
				return nil, nil
			case <-ctx.Done():
				return nil, nil
			}
		} else {
			select {
			case it = <-h.items:
			default:
				return out, nil
			}
		}
		if it.notice == nil {
			out = append(out, it.rec)
		} else if len(out) > 0 {
			h.held = it.notice
			return out, nil
		} else {
			it.notice.handle()
		}
	}
	return out, nil
}

// Close releases every sender waiting on the handoff (the poll loop has ended).
func (h *Handoff) Close() { h.once.Do(func() { close(h.closed) }) }
