package main

// Protocol v2, explicit-records mode (docs/drivers.md): a synchronous Writer (BatchSize 1, one
// WriteMessages per record) sends every feature. A nil Message.Key/Value is null and a non-nil empty one
// empty (writerRecords.ReadRecord sets the record's Key/Value only when non-nil; the encoder writes -1 for
// nil only); a nil Header.Value is a null header value (writeVarNullBytes); a non-zero Time is the
// CreateTime. Explicit partitions: Message.Partition "MUST NOT be set when writing", and the Writer has
// no per-message partition, so they go through the one hook it has, a Balancer (recBalancer), which
// returns the record's partition (one record in flight, so the balancer knows which record it is asked
// about).

import (
	"context"
	"fmt"
	"sync"

	"github.com/segmentio/kafka-go"

	"kbench/drivers/core"
)

func init() {
	core.SetRecordsClient(core.RecordsClient{New: newRecords, Unsupported: map[string]string{
		"partition_mix": "the driver picks one partitioner per producer (explicit, or the client's own)"}})
}

// recBalancer gives the Writer the partition of the record being written.
type recBalancer struct {
	mu        sync.Mutex
	partition int
}

func (b *recBalancer) Balance(_ kafka.Message, _ ...int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.partition
}

type recProducer struct {
	w    *kafka.Writer
	bal  *recBalancer
	mu   sync.Mutex
	done []kafka.Message
}

func newRecords(s *core.Spec, explicit bool) (core.RecordsProducer, error) {
	if err := metadata(s); err != nil {
		return nil, err
	}
	p := &recProducer{w: writer(s)}
	p.w.Async, p.w.BatchSize = false, 1 // one record per request: no BatchTimeout wait
	if explicit {
		p.bal = &recBalancer{}
		p.w.Balancer = p.bal
	}
	p.w.Completion = func(msgs []kafka.Message, err error) {
		if err == nil {
			p.mu.Lock()
			p.done = append(p.done[:0], msgs...)
			p.mu.Unlock()
		}
	}
	return p, nil
}

func (p *recProducer) Send(ctx context.Context, r core.ExplicitRecord) (int32, int64, error) {
	m := kafka.Message{Key: r.Key, Value: r.Value, Time: r.Timestamp}
	for _, h := range r.Headers {
		m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: h.Value})
	}
	if p.bal != nil {
		p.bal.mu.Lock()
		p.bal.partition = int(r.Partition)
		p.bal.mu.Unlock()
	}
	p.mu.Lock()
	p.done = p.done[:0]
	p.mu.Unlock()
	if err := p.w.WriteMessages(ctx, m); err != nil {
		return -1, -1, named(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.done) != 1 {
		return -1, -1, fmt.Errorf("kafka-go reported %d written messages for one", len(p.done))
	}
	return int32(p.done[0].Partition), p.done[0].Offset, nil
}

func (p *recProducer) Close() { _ = p.w.Close() }
