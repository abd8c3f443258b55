// Command sarama is the kbench load driver for github.com/IBM/sarama, protocols 1 and 2 (docs/drivers.md;
// the v2 group consumer is in group.go).
package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"kbench/drivers/core"
)

func main() {
	core.Main(&core.Client{Name: "sarama", Module: "github.com/IBM/sarama",
		Knobs: &core.KnobSupport{Partitioners: []string{"hash", "random", "roundrobin"}},
		Check: checkGroup, NewProducer: newProducer, NewConsumer: newConsumer})
}

func config(s *core.Spec) (*sarama.Config, error) {
	k := s.Knobs
	c := sarama.NewConfig()
	c.ClientID = "kbench-sarama"
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	if k.Acks != nil {
		c.Producer.RequiredAcks = map[int]sarama.RequiredAcks{0: sarama.NoResponse, 1: sarama.WaitForLocal,
			-1: sarama.WaitForAll}[*k.Acks]
	}
	if k.LingerMs != nil {
		c.Producer.Flush.Frequency = time.Duration(*k.LingerMs * float64(time.Millisecond))
	}
	if k.BatchBytes != nil {
		c.Producer.Flush.Bytes = *k.BatchBytes
	}
	if k.BatchMessages != nil {
		c.Producer.Flush.Messages = *k.BatchMessages
	}
	if k.Compression != nil {
		c.Producer.Compression = map[string]sarama.CompressionCodec{"none": sarama.CompressionNone,
			"gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy, "lz4": sarama.CompressionLZ4,
			"zstd": sarama.CompressionZSTD}[*k.Compression]
	}
	if k.Partitioner != nil {
		c.Producer.Partitioner = map[string]sarama.PartitionerConstructor{"hash": sarama.NewHashPartitioner,
			"random": sarama.NewRandomPartitioner, "roundrobin": sarama.NewRoundRobinPartitioner}[*k.Partitioner]
	}
	if k.Idempotence != nil {
		c.Producer.Idempotent = *k.Idempotence
	}
	if k.MaxInFlight != nil {
		c.Net.MaxOpenRequests = *k.MaxInFlight
	}
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Return.Errors = true
	isolation(s, c) // protocol v2 isolation_level (txn.go)
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("sarama: client_config: %v", err)
	}
	return c, nil
}

type producer struct {
	client sarama.Client
	ap     sarama.AsyncProducer
	a      *core.Acker
	topic  string
	wg     sync.WaitGroup
}

// newClient is a sarama client configured from the spec (one for each producer or consumer).
func newClient(s *core.Spec) (sarama.Client, error) {
	cfg, err := config(s)
	if err != nil {
		return nil, err
	}
	return sarama.NewClient(core.Brokers(s), cfg)
}

func newProducer(s *core.Spec, a *core.Acker) (core.Producer, error) {
	client, err := newClient(s)
	if err != nil {
		return nil, err
	}
	if parts, err := client.Partitions(s.Topic); err != nil || len(parts) == 0 {
		client.Close()
		return nil, fmt.Errorf("metadata of topic %s: %v", s.Topic, err)
	}
	ap, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		client.Close()
		return nil, err
	}
	p := &producer{client: client, ap: ap, a: a, topic: s.Topic}
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		for m := range ap.Successes() {
			a.Ack(m.Metadata.(*core.Rec), m.Partition, m.Offset, nil)
		}
	}()
	go func() {
		defer p.wg.Done()
		for e := range ap.Errors() {
			a.Ack(e.Msg.Metadata.(*core.Rec), -1, -1, named(e.Err))
		}
	}()
	return p, nil
}

func named(err error) error {
	var ke sarama.KError
	if errors.As(err, &ke) {
		return &core.NamedError{Name: fmt.Sprintf("KError(%d)", int16(ke)), Err: err}
	}
	return err
}

// smsg allocates the message and the driver's record together.
type smsg struct {
	m   sarama.ProducerMessage
	rec core.Rec
}

func (p *producer) Send(r core.Rec) error {
	x := &smsg{rec: r}
	m := &x.m
	m.Value, m.Metadata, m.Timestamp = sarama.ByteEncoder(r.Value), &x.rec, core.Wall(r.Sent)
	if r.Key != nil {
		m.Key = sarama.ByteEncoder(r.Key)
	}
	m.Topic = p.topic
	select {
	case p.ap.Input() <- m:
	default:
		p.a.QueueFull()
		p.ap.Input() <- m
	}
	return nil
}

func (p *producer) Flush() {}

func (p *producer) Close() {
	p.ap.AsyncClose()
	p.wg.Wait()
	p.client.Close()
}

type consumer struct {
	client   sarama.Client
	group    sarama.ConsumerGroup
	topic    string
	assigned chan struct{}
	once     sync.Once
	msgs     chan *sarama.ConsumerMessage
	hw       sync.Map // partition -> high watermark
	next     map[int32]int64
	cancel   context.CancelFunc
	done     chan struct{}
}

func newConsumer(s *core.Spec) (core.Consumer, error) {
	client, err := newClient(s)
	if err != nil {
		return nil, err
	}
	g, err := sarama.NewConsumerGroupFromClient(*s.Group, client)
	if err != nil {
		client.Close()
		return nil, err
	}
	return &consumer{client: client, group: g, topic: s.Topic, assigned: make(chan struct{}),
		msgs: make(chan *sarama.ConsumerMessage, 4096), next: map[int32]int64{}, done: make(chan struct{})}, nil
}

func (c *consumer) Setup(sarama.ConsumerGroupSession) error {
	c.once.Do(func() { close(c.assigned) })
	return nil
}

func (c *consumer) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (c *consumer) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		c.hw.Store(m.Partition, claim.HighWaterMarkOffset())
		select {
		case c.msgs <- m:
			sess.MarkMessage(m, "")
		case <-sess.Context().Done():
			return nil
		}
	}
	return nil
}

func (c *consumer) Join(ctx context.Context, hold bool) error {
	gctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() {
		defer close(c.done)
		for gctx.Err() == nil {
			if err := c.group.Consume(gctx, []string{c.topic}, c); err != nil && gctx.Err() == nil {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	return core.Await(ctx, c.assigned)
}

func (c *consumer) Poll(ctx context.Context) ([]core.Record, error) {
	recs, err := core.PollChan(ctx, c.msgs, c.group.Errors(), c.record)
	return recs, named(err)
}

// record converts m and notes the next offset of its partition (for Lag).
func (c *consumer) record(m *sarama.ConsumerMessage) core.Record {
	c.next[m.Partition] = m.Offset + 1
	return core.Record{Partition: m.Partition, Offset: m.Offset, Value: m.Value}
}

func (c *consumer) Lag() (int64, bool) { return lagOf(&c.hw, c.next) }

// lagOf sums, over the partitions with a known high watermark (hw: partition -> high watermark), how far
// the next offset to read is behind it; false while no high watermark is known yet.
func lagOf(hw *sync.Map, next map[int32]int64) (int64, bool) {
	var lag int64
	ok := false
	hw.Range(func(k, v any) bool {
		ok = true
		lag += max(0, v.(int64)-next[k.(int32)])
		return true
	})
	return lag, ok
}

func (c *consumer) Close() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
	c.group.Close()
	c.client.Close()
}
