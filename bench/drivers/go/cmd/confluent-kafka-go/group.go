package main

// Protocol v2 (docs/drivers.md, "Protocol v2"): a confluent-kafka-go consumer with the spec's group
// options (librdkafka properties), its rebalance callback as events, and synchronous CommitOffsets.
// librdkafka runs the callback inside Poll; the driver takes a batch with several Polls (one record each),
// so the callback can fire after some of that batch's records were returned: its event is placed after
// them (core.GroupEventsAfter), as the client returned them before the rebalance. Eager assignors hand the
// whole assignment to Assign / Unassign, cooperative-sticky the deltas to IncrementalAssign /
// IncrementalUnassign. librdkafka has no eager sticky assignor.

import (
	"context"
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"kbench/drivers/core"
)

func init() {
	core.SetGroupConsumer(newGroupConsumer)
	core.SetGroupFeatures(core.GroupFeatures{CommitMetadata: true})
}

// assignors are the spec's assignors as librdkafka's partition.assignment.strategy values.
var assignors = map[string]string{"range": "range", "roundrobin": "roundrobin",
	"cooperative-sticky": "cooperative-sticky"}

// checkGroup refuses group options librdkafka cannot honour.
func checkGroup(s *core.Spec) error {
	o := s.GroupOptions
	if bad := core.UnhandledGroupOptions(o, "assignor", "auto_commit", "commit", "session_timeout_ms", "max_records",
		"stop_at_ns", "commit_metadata"); len(bad) > 0 {
		return fmt.Errorf("spec.group_options.%s: the confluent-kafka-go driver does not implement it", bad[0])
	}
	if o != nil && o.Assignor != nil && assignors[*o.Assignor] == "" {
		return fmt.Errorf("spec.group_options.assignor: librdkafka has no %q assignor (range, roundrobin, "+
			"cooperative-sticky)", *o.Assignor)
	}
	return nil
}

// groupConfig is the consumer's configuration with the group options (they win over client_config).
func groupConfig(s *core.Spec) *kafka.ConfigMap {
	cm := configMap(s.ClientConfig)
	_ = cm.SetKey("bootstrap.servers", s.Bootstrap)
	_ = cm.SetKey("group.id", *s.Group)
	if _, ok := s.ClientConfig["auto.offset.reset"]; !ok {
		_ = cm.SetKey("auto.offset.reset", "earliest")
	}
	o := s.GroupOptions
	if o == nil {
		return cm
	}
	if o.Assignor != nil {
		_ = cm.SetKey("partition.assignment.strategy", assignors[*o.Assignor])
	}
	if o.Commit == "batch" || o.AutoCommit != nil {
		_ = cm.SetKey("enable.auto.commit", o.Commit != "batch" && *o.AutoCommit)
	}
	if o.SessionTimeoutMs != nil {
		_ = cm.SetKey("session.timeout.ms", *o.SessionTimeoutMs)
		_ = cm.SetKey("heartbeat.interval.ms", min(3000, *o.SessionTimeoutMs/3))
	}
	return cm
}

type groupConsumer struct {
	consumer
	group    string
	ev       core.GroupEventsAfter
	metadata *string // commit_metadata: every committed TopicPartition's Metadata (nil: librdkafka's default)
}

func newGroupConsumer(s *core.Spec, ev core.GroupEvents) (core.GroupConsumer, error) {
	after, ok := ev.(core.GroupEventsAfter)
	if !ok {
		return nil, fmt.Errorf("the core's group events do not place an event after pending records")
	}
	c, err := kafka.NewConsumer(groupConfig(s))
	if err != nil {
		return nil, err
	}
	var metadata *string
	if s.GroupOptions != nil {
		metadata = s.GroupOptions.CommitMetadata
	}
	return &groupConsumer{consumer: consumer{c: c, topic: s.Topic}, group: *s.Group, ev: after, metadata: metadata}, nil
}

func partitions(tps []kafka.TopicPartition) []int32 {
	out := make([]int32, 0, len(tps))
	for _, tp := range tps {
		out = append(out, tp.Partition)
	}
	return out
}

// generation is librdkafka's, from the serialized consumer group metadata (confluent-kafka-go exposes
// neither it nor the bytes): rd_kafka_consumer_group_metadata_write's "CGMDv2:" magic, the int32
// generation in host order, then the NUL-terminated group id (checked). Nil if the bytes differ.
func (g *groupConsumer) generation() *int32 {
	md, err := g.c.GetConsumerGroupMetadata()
	if err != nil {
		return nil
	}
	b := (*struct{ serialized []byte })(unsafe.Pointer(md)).serialized
	const magic = "CGMDv2:"
	at := len(magic) + 4
	if len(b) < at+len(g.group)+1 || string(b[:len(magic)]) != magic || string(b[at:at+len(g.group)]) != g.group ||
		b[at+len(g.group)] != 0 {
		return nil
	}
	n := int32(binary.NativeEndian.Uint32(b[len(magic):at]))
	return &n
}

// rebalance applies the assignment change, then reports it after the records this Poll's batch already
// holds (c.pending).
func (g *groupConsumer) rebalance(k *kafka.Consumer, ev kafka.Event) error {
	coop := k.GetRebalanceProtocol() == "COOPERATIVE"
	var err error
	switch e := ev.(type) {
	case kafka.AssignedPartitions:
		if coop {
			err = k.IncrementalAssign(e.Partitions)
		} else {
			err = k.Assign(e.Partitions)
		}
		g.ev.AssignedAfter(partitions(e.Partitions), g.generation(), len(g.pending))
		g.assigned = true
	case kafka.RevokedPartitions:
		lost := k.AssignmentLost()
		if coop {
			err = k.IncrementalUnassign(e.Partitions)
		} else {
			err = k.Unassign()
		}
		if len(e.Partitions) > 0 {
			g.ev.RevokedAfter(partitions(e.Partitions), g.generation(), lost, len(g.pending))
		}
	}
	if err != nil {
		g.lastErr = named(err)
	}
	return nil
}

// Join subscribes and polls until the first assignment.
func (g *groupConsumer) Join(ctx context.Context, hold bool) error {
	if err := g.c.SubscribeTopics([]string{g.topic}, g.rebalance); err != nil {
		return err
	}
	for !g.assigned {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		g.take(g.c.Poll(100))
	}
	return nil
}

// CommitSync commits next with CommitOffsets (synchronous); the error is the request's or the first
// partition's.
func (g *groupConsumer) CommitSync(_ context.Context, next map[int32]int64) error {
	tps := make([]kafka.TopicPartition, 0, len(next))
	for p, o := range next {
		tps = append(tps, kafka.TopicPartition{Topic: &g.topic, Partition: p, Offset: kafka.Offset(o),
			Metadata: g.metadata})
	}
	res, err := g.c.CommitOffsets(tps)
	if err != nil {
		return named(err)
	}
	for _, tp := range res {
		if tp.Error != nil {
			return named(tp.Error)
		}
	}
	return nil
}
