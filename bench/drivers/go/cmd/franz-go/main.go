// Command franz-go is the kbench load driver for github.com/twmb/franz-go (kgo), protocol v1
// (docs/drivers.md).
package main

import (
	"context"
	"fmt"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"kbench/drivers/core"
)

var support = core.KnobSupport{
	Client:       "franz-go",
	Partitioners: []string{"sticky", "uniform-bytes", "round-robin", "hash"},
	Unsupported:  map[string]string{"batch.num.messages": "kgo batches by bytes only (batch.size)"},
}

func check(role string, cfg map[string]string) error {
	k, err := core.ParseKnobs(support, cfg)
	if err != nil {
		return err
	}
	if k.Idempotence != nil && *k.Idempotence && k.Acks != nil && *k.Acks != -1 {
		return fmt.Errorf("franz-go: client_config enable.idempotence=true needs acks=all")
	}
	return nil
}

func main() {
	core.Main(&core.Client{Name: "franz-go", Module: "github.com/twmb/franz-go", Check: check,
		NewProducer: newProducer, NewConsumer: newConsumer, SendBlocks: true})
}

func compression(c string) kgo.CompressionCodec {
	switch c {
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

func producerOpts(s *core.Spec) []kgo.Opt {
	k, _ := core.ParseKnobs(support, s.ClientConfig) // checked at spec time
	opts := []kgo.Opt{kgo.SeedBrokers(core.Brokers(s)...), kgo.DefaultProduceTopic(s.Topic)}
	if k.Acks != nil {
		opts = append(opts, kgo.RequiredAcks(map[int]kgo.Acks{0: kgo.NoAck(), 1: kgo.LeaderAck(), -1: kgo.AllISRAcks()}[*k.Acks]))
		if *k.Acks != -1 && k.Idempotence == nil {
			opts = append(opts, kgo.DisableIdempotentWrite()) // kgo's idempotent writes need acks=all
		}
	}
	if k.Idempotence != nil && !*k.Idempotence {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	if k.LingerMs != nil {
		opts = append(opts, kgo.ProducerLinger(time.Duration(*k.LingerMs*float64(time.Millisecond))))
	}
	if k.BatchBytes != nil {
		opts = append(opts, kgo.ProducerBatchMaxBytes(int32(*k.BatchBytes)))
	}
	if k.Compression != nil {
		opts = append(opts, kgo.ProducerBatchCompression(compression(*k.Compression)))
	}
	if k.MaxInFlight != nil {
		opts = append(opts, kgo.MaxProduceRequestsInflightPerBroker(*k.MaxInFlight))
	}
	if k.Partitioner != nil {
		var p kgo.Partitioner
		switch *k.Partitioner {
		case "sticky":
			p = kgo.StickyPartitioner()
		case "uniform-bytes":
			p = kgo.UniformBytesPartitioner(64<<10, true, true, nil)
		case "round-robin":
			p = kgo.RoundRobinPartitioner()
		default: // hash: murmur2 of the key (as Java), sticky for records without one
			p = kgo.StickyKeyPartitioner(nil)
		}
		opts = append(opts, kgo.RecordPartitioner(p))
	}
	return opts
}

// metadata waits until the broker answers and the topic has partitions.
func metadata(cl *kgo.Client, topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, t)
	for {
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && len(resp.Topics) == 1 && len(resp.Topics[0].Partitions) > 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("metadata of topic %s: %v", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type frec struct {
	kr  kgo.Record // first field: a *kgo.Record is a *frec
	rec core.Rec
}

type producer struct {
	cl      *kgo.Client
	promise func(*kgo.Record, error)
	a       *core.Acker
}

func newProducer(s *core.Spec, a *core.Acker) (core.Producer, error) {
	cl, err := kgo.NewClient(producerOpts(s)...)
	if err != nil {
		return nil, err
	}
	if err := metadata(cl, s.Topic); err != nil {
		cl.Close()
		return nil, err
	}
	p := &producer{cl: cl, a: a}
	p.promise = func(r *kgo.Record, err error) {
		f := (*frec)(unsafe.Pointer(r))
		a.Ack(&f.rec, r.Partition, r.Offset, err)
	}
	return p, nil
}

func (p *producer) Send(r core.Rec) error {
	f := &frec{rec: r}
	// the timestamp from the driver's clock reading: kgo would call time.Now() per record
	f.kr.Key, f.kr.Value, f.kr.Timestamp = r.Key, r.Value, core.Wall(r.Sent)
	// blocks while kgo buffers MaxBufferedRecords; the core counts that as queue-full (SendBlocks: asking
	// BufferedProduceRecords would take kgo's producer lock on every record)
	p.cl.Produce(context.Background(), &f.kr, p.promise)
	return nil
}

func (p *producer) Flush() {
	go func() { _ = p.cl.Flush(context.Background()) }() // linger no longer applies once flushing
}

func (p *producer) Close() { p.cl.Close() }

type consumer struct {
	cl       *kgo.Client
	assigned chan struct{}
	hw       map[int32]int64
	next     map[int32]int64
}

func newConsumer(s *core.Spec) (core.Consumer, error) {
	c := &consumer{assigned: make(chan struct{}), hw: map[int32]int64{}, next: map[int32]int64{}}
	first := true
	cl, err := kgo.NewClient(kgo.SeedBrokers(core.Brokers(s)...), kgo.ConsumerGroup(*s.Group),
		kgo.ConsumeTopics(s.Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			if first {
				first = false
				close(c.assigned)
			}
		}))
	if err != nil {
		return nil, err
	}
	c.cl = cl
	return c, nil
}

func (c *consumer) Join(ctx context.Context, hold bool) error {
	select {
	case <-c.assigned:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *consumer) Poll(ctx context.Context) ([]core.Record, error) {
	pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	fs := c.cl.PollRecords(pctx, 10000)
	var first error
	fs.EachError(func(_ string, _ int32, err error) {
		if first == nil && err != context.DeadlineExceeded && err != context.Canceled {
			first = err
		}
	})
	var out []core.Record
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if p.HighWatermark > 0 {
			c.hw[p.Partition] = p.HighWatermark
		}
		for _, r := range p.Records {
			out = append(out, core.Record{Partition: r.Partition, Offset: r.Offset, Value: r.Value})
			c.next[r.Partition] = r.Offset + 1
		}
	})
	return out, first
}

func (c *consumer) Lag() (int64, bool) {
	if len(c.hw) == 0 {
		return 0, false
	}
	var lag int64
	for p, hw := range c.hw {
		lag += max(0, hw-c.next[p])
	}
	return lag, true
}

func (c *consumer) Close() { c.cl.Close() }
