package main

// Protocol v2, explicit-records mode (docs/drivers.md): librdkafka through confluent-kafka-go sends every
// feature. Producer.produce passes a nil Key/Value as NULL (valIsNull/keyIsNull) and a non-nil empty one
// as an empty value; a nil Header.Value as size -1 (null); TopicPartition.Partition is the explicit
// partition (kafka.PartitionAny: librdkafka's partitioner); a non-zero Timestamp is the CreateTime in ms.

import (
	"context"
	"fmt"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"kbench/drivers/core"
)

func init() { core.SetRecordsClient(core.RecordsClient{New: newRecords}) }

type recProducer struct {
	p     *kafka.Producer
	topic string
	dr    chan kafka.Event
}

func newRecords(s *core.Spec, _ bool) (core.RecordsProducer, error) {
	p, err := openProducer(s)
	if err != nil {
		return nil, err
	}
	go func() { // nothing else is produced: drain the events channel (logs, errors)
		for range p.Events() {
		}
	}()
	return &recProducer{p: p, topic: s.Topic, dr: make(chan kafka.Event, 1)}, nil
}

func (p *recProducer) Send(ctx context.Context, r core.ExplicitRecord) (int32, int64, error) {
	tp := kafka.TopicPartition{Topic: &p.topic, Partition: kafka.PartitionAny}
	if r.Partition >= 0 {
		tp.Partition = r.Partition
	}
	m := &kafka.Message{TopicPartition: tp, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
	for _, h := range r.Headers {
		m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: h.Value})
	}
	if err := p.p.Produce(m, p.dr); err != nil {
		return -1, -1, named(err)
	}
	select {
	case ev := <-p.dr:
		dm, ok := ev.(*kafka.Message)
		if !ok {
			return -1, -1, fmt.Errorf("unexpected delivery event %v", ev)
		}
		if dm.TopicPartition.Error != nil {
			return -1, -1, named(dm.TopicPartition.Error)
		}
		return dm.TopicPartition.Partition, int64(dm.TopicPartition.Offset), nil
	case <-ctx.Done():
		return -1, -1, ctx.Err()
	}
}

func (p *recProducer) Close() {
	p.p.Flush(3000)
	p.p.Close()
}
