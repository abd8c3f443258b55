// Command confluent-kafka-go is the kbench load driver for
// github.com/confluentinc/confluent-kafka-go/v2 (its bundled static librdkafka), protocols 1 and 2
// (docs/drivers.md; the v2 group consumer is in group.go). client_config holds librdkafka properties, passed through.
package main

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"kbench/drivers/core"
)

// reserved are the properties the driver sets itself.
var reserved = map[string]string{"bootstrap.servers": "the spec's bootstrap", "group.id": "the spec's group",
	"go.delivery.report.fields": "the driver reads each delivered record's header from its value",
	"go.delivery.reports":       "the driver needs every delivery report"}

func check(s *core.Spec) error {
	if err := checkGroup(s); err != nil {
		return err
	}
	for k := range s.ClientConfig {
		if why, ok := reserved[k]; ok {
			return fmt.Errorf("client_config %s: set by the driver (%s)", k, why)
		}
	}
	// librdkafka refuses unknown properties and bad values itself: build a client that never connects
	cm := configMap(s.ClientConfig)
	var err error
	if s.Role == "producer" {
		var p *kafka.Producer
		if p, err = kafka.NewProducer(cm); err == nil {
			p.Close()
		}
	} else {
		_ = cm.SetKey("group.id", "kbench-config-check")
		var c *kafka.Consumer
		if c, err = kafka.NewConsumer(cm); err == nil {
			_ = c.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("client_config: %v", err)
	}
	return nil
}

func main() {
	core.Main(&core.Client{Name: "confluent-kafka-go", Module: "github.com/confluentinc/confluent-kafka-go/v2",
		Check: check, NewProducer: newProducer, NewConsumer: newConsumer})
}

func configMap(cfg map[string]string) *kafka.ConfigMap {
	cm := &kafka.ConfigMap{"log_level": 3}
	for k, v := range cfg {
		_ = cm.SetKey(k, v)
	}
	return cm
}

func named(err error) error {
	if ke, ok := err.(kafka.Error); ok {
		return &core.NamedError{Name: ke.Code().String(), Err: err}
	}
	return err
}

// producer attributes a delivery report to its record from the header in the reported value, not
// through Message.Opaque: an Opaque costs a lock and a map insert and delete per message in
// confluent-kafka-go. Rate-limited runs keep each record's actual send time in a ring indexed by sequence
// (larger than the most records librdkafka can hold in flight); at max rate it equals the intended time.
type producer struct {
	p     *kafka.Producer
	a     *core.Acker
	topic string
	sent  []atomic.Int64 // rate-limited only
	mask  int64
	done  chan struct{}
}

// openProducer: a librdkafka producer of the spec's client config and bootstrap that has the topic's
// metadata (the plain and the explicit-records producer both start this way).
func openProducer(s *core.Spec) (*kafka.Producer, error) {
	cm := configMap(s.ClientConfig)
	_ = cm.SetKey("bootstrap.servers", s.Bootstrap)
	p, err := kafka.NewProducer(cm)
	if err != nil {
		return nil, err
	}
	if _, err := p.GetMetadata(&s.Topic, false, 30000); err != nil {
		p.Close()
		return nil, fmt.Errorf("metadata of topic %s: %v", s.Topic, err)
	}
	return p, nil
}

func newProducer(s *core.Spec, a *core.Acker) (core.Producer, error) {
	p, err := openProducer(s)
	if err != nil {
		return nil, err
	}
	pr := &producer{p: p, a: a, topic: s.Topic, done: make(chan struct{})}
	if s.Rate != nil {
		inflight := int64(100000) // librdkafka's queue.buffering.max.messages default
		if v, err := strconv.ParseInt(s.ClientConfig["queue.buffering.max.messages"], 10, 64); err == nil {
			inflight = max(inflight, v)
		}
		n := int64(1)
		for n < 4*inflight {
			n <<= 1
		}
		pr.sent, pr.mask = make([]atomic.Int64, n), n-1
	}
	go pr.events()
	return pr, nil
}

// events acks the delivery reports waiting in the channel together (one clock reading: they had all
// arrived when the first was read).
func (p *producer) events() {
	defer close(p.done)
	events := p.p.Events()
	recs := make([]core.Rec, 0, 1024)
	tps := make([]kafka.TopicPartition, 0, 1024)
	for ev := range events {
		recs, tps = p.report(ev, recs[:0], tps[:0])
	drain:
		for len(recs) < cap(recs) {
			select {
			case ev, ok := <-events:
				if !ok {
					break drain
				}
				recs, tps = p.report(ev, recs, tps)
			default:
				break drain
			}
		}
		p.a.AckBatch(len(recs), func(i int) (*core.Rec, int32, int64, error) {
			var err error
			if tps[i].Error != nil {
				err = named(tps[i].Error)
			}
			return &recs[i], tps[i].Partition, int64(tps[i].Offset), err
		})
	}
}

// report appends the record of one delivery report, found from the header in its value.
func (p *producer) report(ev kafka.Event, recs []core.Rec, tps []kafka.TopicPartition) ([]core.Rec,
	[]kafka.TopicPartition) {
	m, ok := ev.(*kafka.Message)
	if !ok {
		return recs, tps
	}
	t, _, seq, ok := core.ParseHeader(m.Value)
	if !ok {
		return recs, tps
	}
	r := core.Rec{Value: m.Value, Seq: seq, Intended: t, Sent: t}
	if p.sent != nil {
		r.Sent = p.sent[seq&p.mask].Load()
	}
	return append(recs, r), append(tps, m.TopicPartition)
}

func (p *producer) Send(r core.Rec) error {
	if p.sent != nil {
		p.sent[r.Seq&p.mask].Store(r.Sent)
	}
	m := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &p.topic, Partition: kafka.PartitionAny},
		Key: r.Key, Value: r.Value}
	for {
		err := p.p.Produce(m, nil)
		if err == nil {
			return nil
		}
		if ke, ok := err.(kafka.Error); ok && ke.Code() == kafka.ErrQueueFull {
			p.a.QueueFull()
			time.Sleep(time.Millisecond)
			continue
		}
		return named(err)
	}
}

func (p *producer) Flush() {}

func (p *producer) Close() {
	p.p.Close() // closes the events channel after the outstanding deliveries
	<-p.done
}

type consumer struct {
	c        *kafka.Consumer
	topic    string
	assigned bool
	hold     bool
	paused   []kafka.TopicPartition
	pending  []core.Record
	lastErr  error
}

func newConsumer(s *core.Spec) (core.Consumer, error) {
	cm := configMap(s.ClientConfig)
	_ = cm.SetKey("bootstrap.servers", s.Bootstrap)
	_ = cm.SetKey("group.id", *s.Group)
	if _, ok := s.ClientConfig["auto.offset.reset"]; !ok {
		_ = cm.SetKey("auto.offset.reset", "earliest")
	}
	c, err := kafka.NewConsumer(cm)
	if err != nil {
		return nil, err
	}
	return &consumer{c: c, topic: s.Topic}, nil
}

func (c *consumer) rebalance(k *kafka.Consumer, ev kafka.Event) error {
	switch e := ev.(type) {
	case kafka.AssignedPartitions:
		if k.GetRebalanceProtocol() == "COOPERATIVE" {
			_ = k.IncrementalAssign(e.Partitions)
		} else {
			_ = k.Assign(e.Partitions)
		}
		if c.hold {
			_ = k.Pause(e.Partitions)
			c.paused = append(c.paused, e.Partitions...)
		}
		c.assigned = true
	case kafka.RevokedPartitions:
		if k.GetRebalanceProtocol() == "COOPERATIVE" {
			_ = k.IncrementalUnassign(e.Partitions)
		} else {
			_ = k.Unassign()
		}
	}
	return nil
}

// Join polls until the first assignment; with hold, the assigned partitions stay paused until the first
// Poll, so no record is handed over before the release.
func (c *consumer) Join(ctx context.Context, hold bool) error {
	c.hold = hold
	if err := c.c.SubscribeTopics([]string{c.topic}, c.rebalance); err != nil {
		return err
	}
	for !c.assigned {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.take(c.c.Poll(100))
	}
	return nil
}

func (c *consumer) take(ev kafka.Event) {
	switch e := ev.(type) {
	case *kafka.Message:
		if e.TopicPartition.Error != nil {
			c.lastErr = named(e.TopicPartition.Error)
			return
		}
		c.pending = append(c.pending, core.Record{Partition: e.TopicPartition.Partition,
			Offset: int64(e.TopicPartition.Offset), Value: e.Value})
	case kafka.Error:
		c.lastErr = named(e)
	}
}

func (c *consumer) Poll(ctx context.Context) ([]core.Record, error) {
	if c.hold {
		c.hold = false
		_ = c.c.Resume(c.paused)
	}
	if len(c.pending) == 0 {
		c.take(c.c.Poll(int(core.PollWait.Milliseconds())))
		for n := 0; len(c.pending) > n && len(c.pending) < core.PollRecords; {
			n = len(c.pending)
			c.take(c.c.Poll(0))
		}
	}
	out, err := c.pending, c.lastErr
	c.pending, c.lastErr = nil, nil
	return out, err
}

func (c *consumer) Lag() (int64, bool) {
	parts, err := c.c.Assignment()
	if err != nil || len(parts) == 0 {
		return 0, false
	}
	pos, err := c.c.Position(parts)
	if err != nil {
		return 0, false
	}
	var lag int64
	for _, p := range pos {
		_, hi, err := c.c.GetWatermarkOffsets(c.topic, p.Partition)
		if err != nil || hi < 0 || p.Offset < 0 {
			continue
		}
		lag += max(0, hi-int64(p.Offset))
	}
	return lag, true
}

func (c *consumer) Close() { _ = c.c.Close() }
