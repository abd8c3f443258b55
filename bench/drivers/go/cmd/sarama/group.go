package main

// Protocol v2 (docs/drivers.md, "Protocol v2"): sarama's ConsumerGroup with the spec's group options, its
// ConsumerGroupHandler's callbacks as events, and commits through the session (MarkOffset, Commit).
//
// The claims' goroutines and the poll loop meet in one core.Handoff, records and rebalance notices in one
// FIFO: a notice runs in the poll loop after every record sent before it was handed over. Eager strategies:
// Setup is the assignment of the session's claims, Cleanup (after every ConsumeClaim returned) their
// revocation. Cooperative-sticky keeps one session across rebalances (sarama has no callback for the
// deltas): a claim's ConsumeClaim starting is its partition's assignment, returning while the session
// lives its revocation (sarama hands the partition on only after ConsumeClaim returned); Setup then
// reports an empty assignment (the first, before ready) and Cleanup what is still held.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"kbench/drivers/core"
)

func init() {
	core.SetGroupConsumer(newGroupConsumer)
	core.SetGroupFeatures(core.GroupFeatures{CommitMetadata: true})
}

// strategies are the spec's assignors as sarama's balance strategies (a new one per consumer: the
// cooperative one keeps state).
var strategies = map[string]func() sarama.BalanceStrategy{
	"range": sarama.NewBalanceStrategyRange, "roundrobin": sarama.NewBalanceStrategyRoundRobin,
	"sticky": sarama.NewBalanceStrategySticky, "cooperative-sticky": sarama.NewBalanceStrategyCooperativeSticky}

// commitErrWait: sarama's Commit returns nothing; a failed partition's error reaches Errors() through a
// goroutine of the session, so the driver waits this long after Commit for one.
const commitErrWait = 20 * time.Millisecond

// checkGroup refuses group options the driver does not implement.
func checkGroup(s *core.Spec) error {
	if bad := core.UnhandledGroupOptions(s.GroupOptions, "assignor", "auto_commit", "commit", "session_timeout_ms",
		"max_records", "stop_at_ns", "commit_metadata"); len(bad) > 0 {
		return fmt.Errorf("spec.group_options.%s: the sarama driver does not implement it", bad[0])
	}
	return nil
}

func groupConfig(s *core.Spec) (*sarama.Config, error) {
	cfg, err := config(s)
	if err != nil {
		return nil, err
	}
	o := s.GroupOptions
	if o == nil {
		return cfg, nil
	}
	if o.Assignor != nil {
		cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{strategies[*o.Assignor]()}
	}
	if o.Commit == "batch" || (o.AutoCommit != nil && !*o.AutoCommit) {
		cfg.Consumer.Offsets.AutoCommit.Enable = false
	}
	if o.SessionTimeoutMs != nil {
		cfg.Consumer.Group.Session.Timeout = time.Duration(*o.SessionTimeoutMs) * time.Millisecond
		cfg.Consumer.Group.Heartbeat.Interval = min(3*time.Second, cfg.Consumer.Group.Session.Timeout/3)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sarama: group_options: %v", err)
	}
	return cfg, nil
}

type groupConsumer struct {
	client   sarama.Client
	group    sarama.ConsumerGroup
	topic    string
	ev       core.GroupEvents
	h        *core.Handoff
	coop     bool
	marks    bool   // auto-commit on: mark each record handed over (what sarama's commits send)
	metadata string // commit_metadata: the metadata of every MarkOffset ("" without it)
	assigned chan struct{}
	first    sync.Once
	// the poll loop's own (set by notices): the session of the records it hands over and what it holds
	sess   sarama.ConsumerGroupSession
	held   map[int32]bool
	errs   []error // errors read while waiting for a commit's, for Poll
	hw     sync.Map
	next   map[int32]int64
	cancel context.CancelFunc
	done   chan struct{}
}

func newGroupConsumer(s *core.Spec, ev core.GroupEvents) (core.GroupConsumer, error) {
	cfg, err := groupConfig(s)
	if err != nil {
		return nil, err
	}
	client, err := sarama.NewClient(core.Brokers(s), cfg)
	if err != nil {
		return nil, err
	}
	g, err := sarama.NewConsumerGroupFromClient(*s.Group, client)
	if err != nil {
		client.Close()
		return nil, err
	}
	coop := s.GroupOptions != nil && s.GroupOptions.Assignor != nil && *s.GroupOptions.Assignor == "cooperative-sticky"
	metadata := ""
	if s.GroupOptions != nil && s.GroupOptions.CommitMetadata != nil {
		metadata = *s.GroupOptions.CommitMetadata
	}
	return &groupConsumer{client: client, group: g, topic: s.Topic, ev: ev, h: core.NewHandoff(1024), coop: coop,
		marks: cfg.Consumer.Offsets.AutoCommit.Enable, metadata: metadata, assigned: make(chan struct{}), held: map[int32]bool{},
		next: map[int32]int64{}, done: make(chan struct{})}, nil
}

func generation(sess sarama.ConsumerGroupSession) *int32 {
	g := sess.GenerationID()
	return &g
}

func (g *groupConsumer) Setup(sess sarama.ConsumerGroupSession) error {
	parts := sess.Claims()[g.topic]
	g.h.Notify(func() {
		g.sess = sess
		if g.coop {
			parts = nil // each claim reports itself as it starts
		}
		for _, p := range parts {
			g.held[p] = true
		}
		g.ev.Assigned(parts, generation(sess))
		g.first.Do(func() { close(g.assigned) })
	})
	return nil
}

// lost: the session ended because the coordinator no longer knew the member or its generation.
func lost(cause error) bool {
	return errors.Is(cause, sarama.ErrUnknownMemberId) || errors.Is(cause, sarama.ErrIllegalGeneration) ||
		errors.Is(cause, sarama.ErrFencedInstancedId)
}

func (g *groupConsumer) Cleanup(sess sarama.ConsumerGroupSession) error {
	cause := context.Cause(sess.Context())
	g.h.Notify(func() {
		var parts []int32
		for p := range g.held {
			parts = append(parts, p)
		}
		sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
		clear(g.held)
		if len(parts) > 0 {
			g.ev.Revoked(parts, generation(sess), lost(cause))
		}
	})
	return nil
}

func (g *groupConsumer) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	p := claim.Partition()
	if g.coop {
		g.h.Notify(func() {
			if !g.held[p] {
				g.held[p] = true
				g.ev.Assigned([]int32{p}, generation(sess))
			}
		})
	}
	ctx := sess.Context()
	for m := range claim.Messages() {
		g.hw.Store(p, claim.HighWaterMarkOffset())
		if !g.h.Send(ctx, core.Record{Partition: m.Partition, Offset: m.Offset, Value: m.Value}) {
			break
		}
	}
	if g.coop && ctx.Err() == nil { // the claim alone ended: a cooperative revocation
		g.h.Notify(func() {
			if g.held[p] {
				delete(g.held, p)
				g.ev.Revoked([]int32{p}, generation(sess), false)
			}
		})
	}
	return nil
}

func (g *groupConsumer) Join(ctx context.Context, hold bool) error {
	gctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go func() {
		defer close(g.done)
		for gctx.Err() == nil {
			if err := g.group.Consume(gctx, []string{g.topic}, g); err != nil && gctx.Err() == nil {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	return g.h.Join(ctx, g.assigned)
}

func (g *groupConsumer) Poll(ctx context.Context) ([]core.Record, error) {
	if len(g.errs) > 0 {
		err := g.errs[0]
		g.errs = g.errs[1:]
		return nil, named(err)
	}
	recs, err := g.h.Poll(ctx, g.group.Errors())
	for _, r := range recs {
		g.next[r.Partition] = r.Offset + 1
		if g.marks && g.sess != nil {
			g.sess.MarkOffset(g.topic, r.Partition, r.Offset+1, "")
		}
	}
	return recs, named(err)
}

// CommitSync marks next in the current session and commits it (sarama's Commit is synchronous when
// auto-commit is off); the error is the first ConsumerError of a committed partition within commitErrWait.
func (g *groupConsumer) CommitSync(_ context.Context, next map[int32]int64) error {
	if g.sess == nil {
		return errors.New("no session to commit in")
	}
	for p, o := range next {
		g.sess.MarkOffset(g.topic, p, o, g.metadata)
	}
	g.sess.Commit()
	t := time.NewTimer(commitErrWait)
	defer t.Stop()
	for {
		select {
		case err, ok := <-g.group.Errors():
			if !ok {
				return nil
			}
			var ce *sarama.ConsumerError
			if errors.As(err, &ce) && ce.Topic == g.topic {
				if _, mine := next[ce.Partition]; mine {
					return named(ce.Err)
				}
			}
			g.errs = append(g.errs, err)
		case <-t.C:
			return nil
		}
	}
}

func (g *groupConsumer) Lag() (int64, bool) { return lagOf(&g.hw, g.next) }

func (g *groupConsumer) Close() {
	g.h.Close()
	if g.cancel != nil {
		g.cancel()
		<-g.done
	}
	g.group.Close()
	g.client.Close()
}
