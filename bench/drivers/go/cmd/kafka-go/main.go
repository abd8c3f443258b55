// Command kafka-go is the kbench load driver for github.com/segmentio/kafka-go, protocols 1 and 2
// (docs/drivers.md; the v2 group consumer is in group.go).
package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"

	"kbench/drivers/core"
)

// maxOutstanding bounds the records in flight: kafka-go's async Writer queues without limit.
const maxOutstanding = 50000

func main() {
	core.Main(&core.Client{Name: "kafka-go", Module: "github.com/segmentio/kafka-go",
		Knobs: &core.KnobSupport{Partitioners: []string{"hash", "roundrobin", "leastbytes", "crc32"},
			Unsupported: map[string]string{"enable.idempotence=true": "kafka-go has no idempotent producer",
				"max.in.flight": "kafka-go has no in-flight request limit"}},
		Check: checkGroup, NewProducer: newProducer, NewConsumer: newConsumer})
}

func writer(s *core.Spec) *kafka.Writer {
	k := s.Knobs
	w := &kafka.Writer{Addr: kafka.TCP(core.Brokers(s)...), Topic: s.Topic, Async: true}
	if k.Acks != nil {
		w.RequiredAcks = map[int]kafka.RequiredAcks{0: kafka.RequireNone, 1: kafka.RequireOne,
			-1: kafka.RequireAll}[*k.Acks]
	}
	if k.LingerMs != nil {
		w.BatchTimeout = time.Duration(*k.LingerMs * float64(time.Millisecond))
		if w.BatchTimeout == 0 {
			w.BatchTimeout = time.Nanosecond // 0 means kafka-go's default (1 s)
		}
	}
	if k.BatchBytes != nil {
		w.BatchBytes = int64(*k.BatchBytes)
	}
	if k.BatchMessages != nil {
		w.BatchSize = *k.BatchMessages
	}
	if k.Compression != nil {
		w.Compression = map[string]kafka.Compression{"none": 0, "gzip": kafka.Compression(compress.Gzip),
			"snappy": kafka.Compression(compress.Snappy), "lz4": kafka.Compression(compress.Lz4),
			"zstd": kafka.Compression(compress.Zstd)}[*k.Compression]
	}
	if k.Partitioner != nil {
		w.Balancer = map[string]kafka.Balancer{"hash": &kafka.Hash{}, "roundrobin": &kafka.RoundRobin{},
			"leastbytes": &kafka.LeastBytes{}, "crc32": &kafka.CRC32Balancer{}}[*k.Partitioner]
	}
	return w
}

type producer struct {
	w    *kafka.Writer
	a    *core.Acker
	sem  chan struct{}
	recs []core.Rec // records are cut from chunks: one allocation per 1,024
}

func newProducer(s *core.Spec, a *core.Acker) (core.Producer, error) {
	if err := metadata(s); err != nil {
		return nil, err
	}
	p := &producer{w: writer(s), a: a, sem: make(chan struct{}, maxOutstanding)}
	p.w.Completion = func(msgs []kafka.Message, err error) {
		err = named(err)
		a.AckBatch(len(msgs), func(i int) (*core.Rec, int32, int64, error) {
			return msgs[i].WriterData.(*core.Rec), int32(msgs[i].Partition), msgs[i].Offset, err
		})
		for range msgs {
			<-p.sem
		}
	}
	return p, nil
}

func named(err error) error {
	var ke kafka.Error
	if err != nil && errors.As(err, &ke) {
		return &core.NamedError{Name: ke.Title(), Err: err}
	}
	return err
}

// metadata waits until the broker answers and the topic has partitions.
func metadata(s *core.Spec) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(core.Brokers(s)...)}
	for {
		resp, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{s.Topic}})
		if err == nil && len(resp.Topics) == 1 && resp.Topics[0].Error == nil && len(resp.Topics[0].Partitions) > 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("metadata of topic %s: %v", s.Topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *producer) Send(r core.Rec) error {
	select {
	case p.sem <- struct{}{}:
	default:
		p.a.QueueFull()
		p.sem <- struct{}{}
	}
	if len(p.recs) == 0 {
		p.recs = make([]core.Rec, 1024)
	}
	rec := &p.recs[0]
	p.recs = p.recs[1:]
	*rec = r
	err := p.w.WriteMessages(context.Background(), kafka.Message{Key: r.Key, Value: r.Value, WriterData: rec,
		Time: core.Wall(r.Sent)})
	if err != nil {
		<-p.sem
	}
	return err
}

func (p *producer) Flush() {}

func (p *producer) Close() { _ = p.w.Close() }

type consumer struct {
	r      *kafka.Reader
	msgs   chan kafka.Message
	errs   chan error
	cancel context.CancelFunc
	done   chan struct{}
}

func newConsumer(s *core.Spec) (core.Consumer, error) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: core.Brokers(s), GroupID: *s.Group, Topic: s.Topic,
		StartOffset: kafka.FirstOffset, CommitInterval: time.Second, MaxWait: 500 * time.Millisecond})
	return &consumer{r: r, msgs: make(chan kafka.Message, 4096), errs: make(chan error, 16)}, nil
}

// Join waits for the reader's first group generation (kafka-go counts it as a rebalance before it
// subscribes to the assignment); the reader fetches in the background but hands nothing over before
// ReadMessage.
func (c *consumer) Join(ctx context.Context, hold bool) error {
	for rebalances := int64(0); rebalances == 0; {
		rebalances += c.r.Stats().Rebalances
		if rebalances > 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func (c *consumer) start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		for {
			m, err := c.r.ReadMessage(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				select {
				case c.errs <- named(err):
				default:
				}
				continue
			}
			select {
			case c.msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
}

func (c *consumer) Poll(ctx context.Context) ([]core.Record, error) {
	if c.cancel == nil {
		c.start()
	}
	return core.PollChan(ctx, c.msgs, c.errs, record)
}

func record(m kafka.Message) core.Record {
	return core.Record{Partition: int32(m.Partition), Offset: m.Offset, Value: m.Value}
}

// Lag: kafka-go's Reader reports lag only without a consumer group.
func (c *consumer) Lag() (int64, bool) { return 0, false }

func (c *consumer) Close() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
	_ = c.r.Close()
}
