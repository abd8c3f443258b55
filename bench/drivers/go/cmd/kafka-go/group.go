package main

// Protocol v2 (docs/drivers.md, "Protocol v2"): kafka-go's ConsumerGroup (the Reader with a GroupID hides
// its assignments) with the spec's group options. Each Generation is an assignment: its partitions are
// read by one partition Reader each, started from the generation's offsets (the committed ones, else the
// first), and commits go through Generation.CommitOffsets. The generation ends when a heartbeat fails (a
// rebalance); ConsumerGroup joins the next one only after every function started on it returned, so the
// revocation is reported from there. Readers and the poll loop meet in one core.Handoff (records and the
// assignment / revocation notices in one FIFO). kafka-go speaks the eager protocol only and balances with
// range or roundrobin; its ConsumerGroup never commits by itself.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"kbench/drivers/core"
)

func init() { core.SetGroupConsumer(newGroupConsumer) }

var balancers = map[string]kafka.GroupBalancer{"range": kafka.RangeGroupBalancer{},
	"roundrobin": kafka.RoundRobinGroupBalancer{}}

// checkGroup refuses group options kafka-go's ConsumerGroup cannot honour.
func checkGroup(s *core.Spec) error {
	o := s.GroupOptions
	if bad := core.UnhandledGroupOptions(o, "assignor", "auto_commit", "commit", "session_timeout_ms", "max_records",
		"stop_at_ns"); len(bad) > 0 {
		return fmt.Errorf("spec.group_options.%s: the kafka-go driver does not implement it", bad[0])
	}
	if o == nil {
		return nil
	}
	if o.Assignor != nil && balancers[*o.Assignor] == nil {
		return fmt.Errorf("spec.group_options.assignor: kafka-go's ConsumerGroup has no %q balancer (range, "+
			"roundrobin; eager protocol only)", *o.Assignor)
	}
	if o.AutoCommit != nil && *o.AutoCommit {
		return fmt.Errorf("spec.group_options.auto_commit: kafka-go's ConsumerGroup never commits by itself " +
			"(only its Reader does)")
	}
	return nil
}

type groupConsumer struct {
	cg       *kafka.ConsumerGroup
	brokers  []string
	topic    string
	ev       core.GroupEvents
	h        *core.Handoff
	assigned chan struct{}
	first    sync.Once
	gen      *kafka.Generation // the poll loop's: the generation of the records it hands over
	errs     chan error
	cancel   context.CancelFunc
	done     chan struct{}
}

func newGroupConsumer(s *core.Spec, ev core.GroupEvents) (core.GroupConsumer, error) {
	cfg := kafka.ConsumerGroupConfig{ID: *s.Group, Brokers: core.Brokers(s), Topics: []string{s.Topic},
		StartOffset: kafka.FirstOffset}
	if o := s.GroupOptions; o != nil {
		if o.Assignor != nil {
			cfg.GroupBalancers = []kafka.GroupBalancer{balancers[*o.Assignor]}
		}
		if o.SessionTimeoutMs != nil {
			cfg.SessionTimeout = time.Duration(*o.SessionTimeoutMs) * time.Millisecond
			cfg.HeartbeatInterval = min(3*time.Second, cfg.SessionTimeout/3)
		}
	}
	cg, err := kafka.NewConsumerGroup(cfg)
	if err != nil {
		return nil, err
	}
	return &groupConsumer{cg: cg, brokers: core.Brokers(s), topic: s.Topic, ev: ev, h: core.NewHandoff(1024),
		assigned: make(chan struct{}), errs: make(chan error, 16), done: make(chan struct{})}, nil
}

func (g *groupConsumer) report(err error) {
	select {
	case g.errs <- named(err):
	default:
	}
}

func (g *groupConsumer) Join(ctx context.Context, hold bool) error {
	gctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go func() {
		defer close(g.done)
		for {
			gen, err := g.cg.Next(gctx)
			if gctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				return
			}
			if err != nil {
				g.report(err)
				continue
			}
			g.generation(gen)
		}
	}()
	return g.h.Join(ctx, g.assigned)
}

// generation reports gen's assignment, then reads its partitions until it ends and reports their
// revocation (kafka-go waits for that before it joins the next generation; so does the caller's Next).
func (g *groupConsumer) generation(gen *kafka.Generation) {
	parts := gen.Assignments[g.topic]
	ids := make([]int32, len(parts))
	for i, pa := range parts {
		ids[i] = int32(pa.ID)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	id := gen.ID
	g.h.Notify(func() {
		g.gen = gen
		g.ev.Assigned(ids, &id)
		g.first.Do(func() { close(g.assigned) })
	})
	ended := make(chan struct{}) // the next generation's assignment waits for this one's revocation
	defer func() { <-ended }()
	gen.Start(func(ctx context.Context) {
		defer close(ended)
		var wg sync.WaitGroup
		for _, pa := range parts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g.read(ctx, pa)
			}()
		}
		<-ctx.Done()
		wg.Wait()
		if len(ids) > 0 {
			g.h.Notify(func() { g.ev.Revoked(ids, &id, false) })
		}
	})
}

// read hands over one assigned partition's records from its start offset until the generation ends.
func (g *groupConsumer) read(ctx context.Context, pa kafka.PartitionAssignment) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: g.brokers, Topic: g.topic, Partition: pa.ID,
		MaxWait: 500 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(pa.Offset); err != nil {
		g.report(err)
		return
	}
	for {
		m, err := r.ReadMessage(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			g.report(err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if !g.h.Send(ctx, record(m)) {
			return
		}
	}
}

func (g *groupConsumer) Poll(ctx context.Context) ([]core.Record, error) {
	return g.h.Poll(ctx, g.errs)
}

// CommitSync commits next with the generation's CommitOffsets (one synchronous OffsetCommit; its error is
// the request's or the first partition's).
func (g *groupConsumer) CommitSync(_ context.Context, next map[int32]int64) error {
	if g.gen == nil {
		return errors.New("no generation to commit in")
	}
	offs := make(map[int]int64, len(next))
	for p, o := range next {
		offs[int(p)] = o
	}
	return named(g.gen.CommitOffsets(map[string]map[int]int64{g.topic: offs}))
}

// Lag: the group's partition Readers are not tracked for it.
func (g *groupConsumer) Lag() (int64, bool) { return 0, false }

func (g *groupConsumer) Close() {
	g.h.Close()
	_ = g.cg.Close()
	if g.cancel != nil {
		g.cancel()
		<-g.done
	}
}
