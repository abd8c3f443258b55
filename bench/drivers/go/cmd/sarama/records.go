package main

// Protocol v2, explicit-records mode (docs/drivers.md): a SyncProducer sends every feature. A nil
// ProducerMessage.Key/Value is null; ByteEncoder of a non-nil empty slice is empty (produceSet.add encodes
// only non-nil Encoders, prepEncoder.putVarintBytes writes -1 for nil only); a nil RecordHeader.Value is a
// null header value; Partition is honoured by the ManualPartitioner; a non-zero Timestamp is the
// CreateTime (the default Version, 2.8, writes record batches v2).

import (
	"context"

	"github.com/IBM/sarama"

	"kbench/drivers/core"
)

func init() {
	core.SetRecordsClient(core.RecordsClient{New: newRecords, Unsupported: map[string]string{
		"partition_mix": "the driver picks one partitioner per producer (explicit, or the client's own)"}})
}

type recProducer struct {
	sp    sarama.SyncProducer
	topic string
}

func newRecords(s *core.Spec, explicit bool) (core.RecordsProducer, error) {
	cfg, err := config(s)
	if err != nil {
		return nil, err
	}
	if explicit {
		cfg.Producer.Partitioner = sarama.NewManualPartitioner
	}
	sp, err := sarama.NewSyncProducer(core.Brokers(s), cfg)
	if err != nil {
		return nil, err
	}
	return &recProducer{sp: sp, topic: s.Topic}, nil
}

func (p *recProducer) Send(_ context.Context, r core.ExplicitRecord) (int32, int64, error) {
	m := &sarama.ProducerMessage{Topic: p.topic, Partition: max(r.Partition, 0), Timestamp: r.Timestamp}
	if r.Key != nil {
		m.Key = sarama.ByteEncoder(r.Key)
	}
	if r.Value != nil {
		m.Value = sarama.ByteEncoder(r.Value)
	}
	for _, h := range r.Headers {
		m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
	}
	return p.sp.SendMessage(m) // waits for the ack (Producer.Timeout / Net timeouts bound it)
}

func (p *recProducer) Close() { _ = p.sp.Close() }
