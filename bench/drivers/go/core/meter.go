package core

import (
	"sync"
	"time"
)

// meter is what the producer's Acker and the consumer's receiver share: one lock, the per-second series
// (its whole-run histogram is the sum of the intervals'), the running count and the count at the last
// stat line.
type meter struct {
	mu       sync.Mutex
	series   *Series
	total    int64
	lastStat int64
}

// stat returns the count since the last call, the latest interval's p99 and the total.
func (m *meter) stat() (n int64, p99 *int64, total int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n = m.total - m.lastStat
	m.lastStat = m.total
	return n, m.series.LastP99(), m.total
}

// writeStat writes one stat line at now (t_s counts from t0).
func (m *meter) writeStat(out *Out, t0, now int64) {
	n, p99, total := m.stat()
	out.Line(map[string]any{"type": "stat", "t_s": float64(now-t0) / 1e9, "count": n, "p99_us": p99,
		"total": total})
}

// closeWithin calls closeFn and waits for it at most d (a client that hangs on close does not keep the
// driver from writing its result).
func closeWithin(closeFn func(), d time.Duration) {
	ch := make(chan struct{})
	go func() { closeFn(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(d):
	}
}
