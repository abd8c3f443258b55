package core

import (
	"context"
	"time"
)

// What Consumer.Poll waits for and hands over at the most.
const (
	PollWait    = 100 * time.Millisecond
	PollRecords = 10000
)

// Await returns nil once ready is closed, or ctx's error if ctx ends first (Consumer.Join of a client
// that signals its first assignment by closing a channel).
func Await(ctx context.Context, ready <-chan struct{}) error {
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PollChan is Consumer.Poll for an adapter whose client hands over messages through a channel: it waits
// at most PollWait for a first message or an error, then takes what else is waiting, up to PollRecords.
// record converts one message (and may note its offset for Lag).
func PollChan[M any](ctx context.Context, msgs <-chan M, errs <-chan error, record func(M) Record) ([]Record,
	error) {
	t := time.NewTimer(PollWait)
	defer t.Stop()
	var out []Record
	select {
	case m := <-msgs:
		out = append(out, record(m))
	case err := <-errs:
		return nil, err
	case <-t.C:
		return nil, nil
	case <-ctx.Done():
		return nil, nil
	}
	for len(out) < PollRecords {
		select {
		case m := <-msgs:
			out = append(out, record(m))
		default:
			return out, nil
		}
	}
	return out, nil
}
