package core

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ProtocolV2 adds consumer-group options and events to protocol v1 (docs/drivers.md, "Protocol v2").
const ProtocolV2 = 2

// Assignors are the spec's group_options.assignor names; a client maps each to its own.
var Assignors = []string{"range", "roundrobin", "sticky", "cooperative-sticky"}

// GroupOptions is spec.group_options (protocol v2); a nil field keeps the client's default.
type GroupOptions struct {
	Assignor         *string `json:"assignor"`
	AutoCommit       *bool   `json:"auto_commit"`
	Commit           string  `json:"commit"` // "" or "none"; "batch": commit each poll batch synchronously
	SessionTimeoutMs *int    `json:"session_timeout_ms"`
	MaxRecords       *int64  `json:"max_records"`
	StopAtNs         *int64  `json:"stop_at_ns"`
	GroupExtra               // instance_id, auto_offset_reset, group_protocol (group_extra.go)
}

// GroupSpec is the part of the spec only protocol v2 has (embedded in Spec).
type GroupSpec struct {
	GroupOptions *GroupOptions `json:"group_options"`
}

// GroupEvents receives a group consumer's rebalance callbacks (partitions of the spec's topic).
type GroupEvents interface {
	Assigned(partitions []int32, generation *int32)
	Revoked(partitions []int32, generation *int32, lost bool)
}

// GroupEventsAfter is also implemented by the GroupEvents a driver gets, for a client whose callback can
// fire while the driver is taking a batch from it (librdkafka's rebalance callback inside a Poll after
// other Polls returned records): the event is placed after the pending records the client had already
// returned, which that batch hands over.
type GroupEventsAfter interface {
	AssignedAfter(partitions []int32, generation *int32, pending int)
	RevokedAfter(partitions []int32, generation *int32, lost bool, pending int)
}

// UnhandledGroupOptions names (by their spec keys) the group options set in o that are not in handled: a
// driver refuses them (exit 2) rather than ignore an option its client does not implement.
func UnhandledGroupOptions(o *GroupOptions, handled ...string) []string {
	if o == nil {
		return nil
	}
	return unhandled(reflect.ValueOf(*o), handled)
}

// unhandled walks a struct's fields by their JSON names, into embedded structs (GroupExtra).
func unhandled(v reflect.Value, handled []string) []string {
	var out []string
	for i := range v.NumField() {
		f, sf := v.Field(i), v.Type().Field(i)
		if sf.Anonymous && f.Kind() == reflect.Struct {
			out = append(out, unhandled(f, handled)...)
			continue
		}
		if name := strings.Split(sf.Tag.Get("json"), ",")[0]; !f.IsZero() && !contains(handled, name) {
			out = append(out, name)
		}
	}
	return out
}

// GroupConsumer is a Consumer built with the spec's group options that can also commit synchronously.
// Its rebalance callbacks must run only inside Poll (or Close): the events' read counts rely on it.
type GroupConsumer interface {
	Consumer
	// CommitSync commits next offsets (partition -> offset of the next record to read) and waits.
	CommitSync(ctx context.Context, next map[int32]int64) error
}

// NewGroupConsumer builds the consumer of a spec with group options, reporting its rebalances to ev.
type NewGroupConsumer func(s *Spec, ev GroupEvents) (GroupConsumer, error)

// groupConsumer is the driver's protocol v2 group consumer (SetGroupConsumer); nil: the driver refuses
// group options.
var groupConsumer NewGroupConsumer

// SetGroupConsumer registers the driver's protocol v2 group consumer, from an init of its group.go.
func SetGroupConsumer(f NewGroupConsumer) { groupConsumer = f }

// negotiate accepts protocol 1 and 2; the process then speaks the spec's version (hello, ready, result).
func negotiate(s *Spec) error {
	if s.Protocol != 1 && s.Protocol != ProtocolV2 {
		return fmt.Errorf("spec.protocol: this driver speaks protocols 1 and %d, got %d", ProtocolV2, s.Protocol)
	}
	if s.GroupOptions != nil && s.Protocol < ProtocolV2 {
		return fmt.Errorf("spec.group_options: needs protocol %d", ProtocolV2)
	}
	Protocol = s.Protocol
	return checkGroupOptions(s)
}

func checkGroupOptions(s *Spec) error {
	o := s.GroupOptions
	if o == nil {
		return nil
	}
	switch {
	case s.Role != "consumer":
		return fmt.Errorf("spec.group_options: only a consumer takes them")
	case o.Commit != "" && o.Commit != "none" && o.Commit != "batch":
		return fmt.Errorf("spec.group_options.commit: expected \"none\" or \"batch\", got %q", o.Commit)
	case o.Commit == "batch" && o.AutoCommit != nil && *o.AutoCommit:
		return fmt.Errorf("spec.group_options: commit \"batch\" with auto_commit true")
	case o.MaxRecords != nil && *o.MaxRecords <= 0:
		return fmt.Errorf("spec.group_options.max_records: expected a positive count")
	case o.SessionTimeoutMs != nil && *o.SessionTimeoutMs <= 0:
		return fmt.Errorf("spec.group_options.session_timeout_ms: expected a positive number of ms")
	}
	if o.Assignor != nil && !contains(Assignors, *o.Assignor) {
		return fmt.Errorf("spec.group_options.assignor: expected one of %v, got %q", Assignors, *o.Assignor)
	}
	return checkGroupExtra(o)
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// readyLine is the consumer's ready line: protocol v2 repeats the version and says whether group events
// follow (in verify mode, from a client with a group consumer).
func readyLine(s *Spec) map[string]any {
	line := map[string]any{"type": "ready"}
	if s.Protocol >= ProtocolV2 {
		line["protocol"] = s.Protocol
		line["group_events"] = s.Verify && groupConsumer != nil
	}
	return line
}

// groupClient returns the client whose NewConsumer builds the group consumer of a v2 spec (with its
// events, commits and own stop), and the control whose Stop also closes when that consumer stops itself.
// A v1 spec (or one without group options) gets c and ctl back unchanged.
func groupClient(c *Client, s *Spec, ctl *Control, out *Out) (*Client, *Control, error) {
	if s.Protocol < ProtocolV2 || s.Role != "consumer" {
		return c, ctl, nil
	}
	if groupConsumer == nil {
		if s.GroupOptions != nil {
			return nil, nil, fmt.Errorf("spec.group_options: %s's driver has no group consumer for protocol %d",
				c.Name, ProtocolV2)
		}
		return c, ctl, nil
	}
	opts := GroupOptions{}
	if s.GroupOptions != nil {
		opts = *s.GroupOptions
	}
	stop := make(chan struct{})
	var once sync.Once
	halt := func() { once.Do(func() { close(stop) }) }
	go func() { <-ctl.Stop; halt() }()
	ev := &eventOut{out: out, on: s.Verify}
	gc := *c
	gc.NewConsumer = func(s *Spec) (Consumer, error) {
		inner, err := groupConsumer(s, ev)
		if err != nil {
			return nil, err
		}
		return &groupRun{inner: inner, opts: opts, ev: ev, halt: halt}, nil
	}
	return &gc, &Control{Start: ctl.Start, Consume: ctl.Consume, Stop: stop}, nil
}

// eventOut writes the assigned / revoked / committed lines; reads counts the records handed over so far.
type eventOut struct {
	out   *Out
	on    bool
	reads atomic.Int64
	done  atomic.Bool // the poll loop ended: a close's revocation is not reported
}

func (e *eventOut) line(kind string, fields map[string]any) { e.lineAfter(kind, 0, fields) }

// lineAfter writes an event placed after pending records not yet counted in reads (GroupEventsAfter).
func (e *eventOut) lineAfter(kind string, pending int, fields map[string]any) {
	if !e.on || e.done.Load() {
		return
	}
	fields["type"] = kind
	fields["reads"] = e.reads.Load() + int64(pending)
	fields["t_ns"] = Now()
	e.out.Line(fields)
}

func sortedParts(ps []int32) []int32 {
	out := append([]int32{}, ps...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (e *eventOut) Assigned(ps []int32, gen *int32) {
	e.line("assigned", map[string]any{"partitions": sortedParts(ps), "generation": gen})
}

func (e *eventOut) Revoked(ps []int32, gen *int32, lost bool) {
	e.line("revoked", map[string]any{"partitions": sortedParts(ps), "generation": gen, "lost": lost})
}

func (e *eventOut) AssignedAfter(ps []int32, gen *int32, pending int) {
	e.lineAfter("assigned", pending, map[string]any{"partitions": sortedParts(ps), "generation": gen})
}

func (e *eventOut) RevokedAfter(ps []int32, gen *int32, lost bool, pending int) {
	e.lineAfter("revoked", pending, map[string]any{"partitions": sortedParts(ps), "generation": gen, "lost": lost})
}

func (e *eventOut) committed(next map[int32]int64, err error) {
	offs := make(map[string]int64, len(next))
	for p, o := range next {
		offs[strconv.Itoa(int(p))] = o
	}
	var name any
	if err != nil {
		name = ErrorName(err)
	}
	e.line("committed", map[string]any{"offsets": offs, "ok": err == nil, "error": name})
}

// groupRun is the Consumer the core polls for a v2 spec: it stops after max_records or at stop_at_ns
// (the rest of that batch is dropped) and commits each batch it hands over when commit is "batch".
type groupRun struct {
	inner  GroupConsumer
	opts   GroupOptions
	ev     *eventOut
	halt   func()
	handed int64
}

func (g *groupRun) Join(ctx context.Context, hold bool) error { return g.inner.Join(ctx, hold) }
func (g *groupRun) Lag() (int64, bool)                        { return g.inner.Lag() }

func (g *groupRun) Poll(ctx context.Context) ([]Record, error) {
	if g.opts.StopAtNs != nil && Now() >= *g.opts.StopAtNs {
		g.stop()
		return nil, nil
	}
	recs, err := g.inner.Poll(ctx)
	if m := g.opts.MaxRecords; m != nil && g.handed+int64(len(recs)) >= *m {
		recs = recs[:*m-g.handed]
		defer g.stop()
	}
	g.handed += int64(len(recs))
	g.ev.reads.Add(int64(len(recs)))
	if g.opts.Commit == "batch" && len(recs) > 0 {
		next := map[int32]int64{}
		for _, r := range recs {
			next[r.Partition] = r.Offset + 1
		}
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cerr := g.inner.CommitSync(cctx, next)
		cancel()
		g.ev.committed(next, cerr)
	}
	return recs, err
}

// stop ends the poll loop: no more events (the member leaves the group at Close).
func (g *groupRun) stop() {
	g.ev.done.Store(true)
	g.halt()
}

func (g *groupRun) Close() {
	g.ev.done.Store(true)
	g.inner.Close()
}
