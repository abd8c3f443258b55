package main

// Protocol v2, explicit-records mode (docs/drivers.md): kgo sends every feature. A nil Key/Value/header
// Value is written as null (kbin.AppendVarintBytes), a non-nil empty one as empty; Record.Partition is
// honoured with the ManualPartitioner; Record.Timestamp is the CreateTime (kgo sets time.Now() only when
// it is zero).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"kbench/drivers/core"
)

func init() {
	core.SetRecordsClient(core.RecordsClient{New: newRecords, Unsupported: map[string]string{
		"partition_mix": "the driver picks one partitioner per producer (explicit, or the client's own)"}})
}

type recProducer struct{ cl *kgo.Client }

func newRecords(s *core.Spec, explicit bool) (core.RecordsProducer, error) {
	opts := producerOpts(s)
	if explicit {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	if err := metadata(cl, s.Topic); err != nil {
		cl.Close()
		return nil, err
	}
	return &recProducer{cl: cl}, nil
}

func (p *recProducer) Send(ctx context.Context, r core.ExplicitRecord) (int32, int64, error) {
	kr := &kgo.Record{Key: r.Key, Value: r.Value, Timestamp: r.Timestamp, Partition: max(r.Partition, 0)}
	for _, h := range r.Headers {
		kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	if err := p.cl.ProduceSync(ctx, kr).FirstErr(); err != nil {
		return -1, -1, err
	}
	return kr.Partition, kr.Offset, nil
}

func (p *recProducer) Close() { p.cl.Close() }
