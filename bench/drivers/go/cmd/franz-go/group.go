package main

// Protocol v2 (docs/drivers.md, "Protocol v2"): kgo's group consumer with the spec's group options, its
// OnPartitionsAssigned / Revoked / Lost callbacks as events, and synchronous commits (CommitOffsetsSync).
// BlockRebalanceOnPoll keeps the callbacks out of the application's processing: they run only while
// the driver is inside Poll (which first calls AllowRebalance), as the events' read counts need.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"kbench/drivers/core"
)

func init() {
	core.SetGroupConsumer(newGroupConsumer)
	core.SetGroupFeatures(core.GroupFeatures{InstanceID: true, AutoOffsetReset: true, ConsumerProtocol: true,
		Heartbeat: true})
}

// resetOpts maps auto_offset_reset: earliest (also the default) and latest as kgo's reset offset (which
// also starts a partition without a commit); none starts only at a committed offset, and an
// out-of-range one is fatal for the partition (kgo hands the error to the poll).
func resetOpts(reset *string) []kgo.Opt {
	switch {
	case reset != nil && *reset == "latest":
		return []kgo.Opt{kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd())}
	case reset != nil && *reset == "none":
		return []kgo.Opt{kgo.ConsumeStartOffset(kgo.NewOffset().AtCommitted()), kgo.ConsumeResetOffset(kgo.NoResetOffset())}
	}
	return []kgo.Opt{kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
}

// extraOpts: static membership, the heartbeat interval and KIP-848's protocol (kgo uses it with ServerSideBalancer when the broker
// has ConsumerGroupHeartbeat v1, with its default cooperative-sticky balancer as the server's "uniform").
func extraOpts(o *core.GroupOptions) []kgo.Opt {
	var opts []kgo.Opt
	if o.InstanceID != nil {
		opts = append(opts, kgo.InstanceID(*o.InstanceID))
	}
	if o.HeartbeatMs != nil {
		opts = append(opts, kgo.HeartbeatInterval(time.Duration(*o.HeartbeatMs)*time.Millisecond))
	}
	if o.GroupProtocol != nil && *o.GroupProtocol == "consumer" {
		opts = append(opts, kgo.ServerSideBalancer())
	}
	return opts
}

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
		kgo.ConsumeTopics(s.Topic), kgo.BlockRebalanceOnPoll(),
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
	if o == nil {
		o = &core.GroupOptions{}
	}
	opts = append(append(opts, resetOpts(o.AutoOffsetReset)...), extraOpts(o)...)
	if o.Assignor != nil {
		opts = append(opts, kgo.Balancers(balancer(*o.Assignor)))
	}
	if o.Commit == "batch" || (o.AutoCommit != nil && !*o.AutoCommit) {
		opts = append(opts, kgo.DisableAutoCommit())
	}
	if o.SessionTimeoutMs != nil {
		opts = append(opts, kgo.SessionTimeout(time.Duration(*o.SessionTimeoutMs)*time.Millisecond))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	c.cl = cl
	return g, nil
}

// Poll lets a blocked rebalance run (its callbacks write their events now), then polls. A Kafka error code
// wrapped in a group error ("unable to join group session: FENCED_INSTANCE_ID: ...") is named by its code.
func (g *groupConsumer) Poll(ctx context.Context) ([]core.Record, error) {
	g.cl.AllowRebalance()
	recs, err := g.consumer.Poll(ctx)
	var ke *kerr.Error
	if err != nil && errors.As(err, &ke) {
		err = &core.NamedError{Name: ke.Message, Err: err}
	}
	return recs, err
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
