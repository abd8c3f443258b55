package main

// Protocol v2 (docs/drivers.md, "Protocol v2"): kgo's group consumer with the spec's group options, its
// OnPartitionsAssigned / Revoked / Lost callbacks as events, and synchronous commits (CommitOffsetsSync).
// BlockRebalanceOnPoll keeps the callbacks out of the application's processing: they run only while
// the driver is inside Poll (which first calls AllowRebalance), as the events' read counts need.

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"kbench/drivers/core"
)

func init() { core.SetGroupConsumer(newGroupConsumer) }

func balancer(name string) kgo.GroupBalancer {
	switch name {
	case "roundrobin":
		return kgo.RoundRobinBalancer()
	case "sticky":
		return kgo.StickyBalancer()
	case "cooperative-sticky":
		return kgo.CooperativeStickyBalancer()
	}
	return kgo.RangeBalancer()
}

type groupConsumer struct {
	*consumer
	topic string
}

func newGroupConsumer(s *core.Spec, ev core.GroupEvents) (core.GroupConsumer, error) {
	c := &consumer{assigned: make(chan struct{}), hw: map[int32]int64{}, next: map[int32]int64{}}
	g := &groupConsumer{consumer: c, topic: s.Topic}
	first := true
	gen := func(cl *kgo.Client) *int32 {
		_, n := cl.GroupMetadata()
		if n < 0 {
			return nil
		}
		return &n
	}
	opts := []kgo.Opt{kgo.SeedBrokers(core.Brokers(s)...), kgo.ConsumerGroup(*s.Group),
		kgo.ConsumeTopics(s.Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(func(_ context.Context, cl *kgo.Client, m map[string][]int32) {
			ev.Assigned(m[s.Topic], gen(cl))
			if first {
				first = false
				close(c.assigned)
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, cl *kgo.Client, m map[string][]int32) {
			if len(m[s.Topic]) > 0 {
				ev.Revoked(m[s.Topic], gen(cl), false)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, cl *kgo.Client, m map[string][]int32) {
			if len(m[s.Topic]) > 0 {
				ev.Revoked(m[s.Topic], gen(cl), true)
			}
		})}
	opts = append(opts, isolationOpts(s)...) // protocol v2 isolation_level (txn.go)
	o := s.GroupOptions
	if o != nil && o.Assignor != nil {
		opts = append(opts, kgo.Balancers(balancer(*o.Assignor)))
	}
	if o != nil && (o.Commit == "batch" || (o.AutoCommit != nil && !*o.AutoCommit)) {
		opts = append(opts, kgo.DisableAutoCommit())
	}
	if o != nil && o.SessionTimeoutMs != nil {
		opts = append(opts, kgo.SessionTimeout(time.Duration(*o.SessionTimeoutMs)*time.Millisecond))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	c.cl = cl
	return g, nil
}

// Poll lets a blocked rebalance run (its callbacks write their events now), then polls.
func (g *groupConsumer) Poll(ctx context.Context) ([]core.Record, error) {
	g.cl.AllowRebalance()
	return g.consumer.Poll(ctx)
}

// CommitSync commits next offsets with CommitOffsetsSync; an error is the request's or the first
// partition's error code.
func (g *groupConsumer) CommitSync(ctx context.Context, next map[int32]int64) error {
	offs := map[int32]kgo.EpochOffset{}
	for p, o := range next {
		offs[p] = kgo.EpochOffset{Epoch: -1, Offset: o}
	}
	var cerr error
	g.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{g.topic: offs},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				cerr = err
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if e := kerr.ErrorForCode(p.ErrorCode); e != nil && cerr == nil {
						cerr = &core.NamedError{Name: errName(e), Err: e}
					}
				}
			}
		})
	return cerr
}

func errName(e error) string {
	if ke, ok := e.(*kerr.Error); ok {
		return ke.Message
	}
	return fmt.Sprint(e)
}

func (g *groupConsumer) Close() {
	g.cl.AllowRebalance()
	g.consumer.Close()
}
