package core

// Protocol v2, transactional mode (docs/drivers.md, "Protocol v2: transactions"): a producer spec with
// a transactions object runs its schedule in transactions (or consume-transform-produce), one txn line
// per transaction; a consumer spec's isolation_level sets the client's. A client registers its
// transactional producer with SetTxnClient (from an init of its txn.go); without one the driver refuses
// the spec (exit 2).

import (
	"context"
	"fmt"
	"math"
	"time"
)

// TxnOptions is spec.transactions.
type TxnOptions struct {
	TransactionalID string            `json:"transactional_id"`
	Messages        int               `json:"messages"`
	AbortRatio      float64           `json:"abort_ratio"`
	Plan            []string          `json:"plan"`
	Hold            *string           `json:"hold"`
	TimeoutMs       *int              `json:"timeout_ms"`
	Consume         *ConsumeTransform `json:"consume"`
}

// ConsumeTransform is spec.transactions.consume: the input topic, the group, the records to commit.
type ConsumeTransform struct {
	Topic   string `json:"topic"`
	Group   string `json:"group"`
	Records int64  `json:"records"`
}

// TxnSpec is the part of a v2 spec the transactional mode adds (embedded in Spec).
type TxnSpec struct {
	Transactions   *TxnOptions `json:"transactions"`
	IsolationLevel *string     `json:"isolation_level"`
}

// EndOf says how transaction k (from 0) ends: Plan[k], else aborted when floor((k+1)r) > floor(kr).
func (o *TxnOptions) EndOf(k int64) string {
	if k < int64(len(o.Plan)) {
		return o.Plan[k]
	}
	r := o.AbortRatio
	if math.Floor(float64(k+1)*r+1e-9) > math.Floor(float64(k)*r+1e-9) {
		return "abort"
	}
	return "commit"
}

// TxnClient is a client's transactional producer.
type TxnClient interface {
	// Begin starts a transaction.
	Begin() error
	// Send hands r to the client for partition (-1: the client's partitioner); acks go to the Acker.
	Send(r Rec, partition int32) error
	// Flush waits until every record sent is acked or failed.
	Flush(ctx context.Context) error
	// End commits (after a flush) or aborts the transaction: its outcome ("committed", "aborted" or
	// "unknown"), the first error, and whether the producer cannot go on (fenced, fatal). A
	// consume-transform-produce client also commits the polled offsets in the transaction, and after
	// any outcome but committed puts its consumer back to the group's committed offsets.
	End(ctx context.Context, commit bool) (outcome string, err error, fatal bool)
	Close()
}

// TxnPoller is a TxnClient that also consumes (consume-transform-produce): at most max records of the
// input topic, read_committed.
type TxnPoller interface {
	Poll(ctx context.Context, max int) ([]Record, error)
}

// NewTxnClient builds the transactional producer of a spec with transactions (initialised).
type NewTxnClient func(s *Spec, a *Acker) (TxnClient, error)

var (
	txnClient NewTxnClient
	isolation bool
)

// SetTxnClient registers the driver's transactional producer.
func SetTxnClient(f NewTxnClient) { txnClient = f }

// SetIsolation says the driver's consumers honour spec.isolation_level (else the driver refuses one).
func SetIsolation() { isolation = true }

// checkTxn refuses transactions or an isolation level the spec or the driver cannot have.
func checkTxn(s *Spec) error {
	if s.IsolationLevel != nil && (s.Protocol < ProtocolV2 || (*s.IsolationLevel != "read_committed" &&
		*s.IsolationLevel != "read_uncommitted")) {
		return fmt.Errorf("spec.isolation_level: expected read_committed or read_uncommitted in a protocol %d spec",
			ProtocolV2)
	}
	if s.IsolationLevel != nil && !isolation {
		return fmt.Errorf("spec.isolation_level: this driver's consumer does not set an isolation level")
	}
	o := s.Transactions
	if o == nil {
		return nil
	}
	switch {
	case s.Protocol < ProtocolV2 || s.Role != "producer":
		return fmt.Errorf("spec.transactions: only a producer's protocol %d spec has them", ProtocolV2)
	case txnClient == nil:
		return fmt.Errorf("spec.transactions: this driver has no transactional producer")
	case o.TransactionalID == "":
		return fmt.Errorf("spec.transactions.transactional_id: expected a non-empty string")
	case o.Messages <= 0:
		return fmt.Errorf("spec.transactions.messages: expected a positive count")
	case o.AbortRatio < 0 || o.AbortRatio > 1:
		return fmt.Errorf("spec.transactions.abort_ratio: expected 0..1")
	case o.Consume != nil && (o.Consume.Topic == "" || o.Consume.Group == "" || o.Consume.Records <= 0):
		return fmt.Errorf("spec.transactions.consume: expected topic, group and a positive records count")
	case o.Consume != nil && o.Hold != nil:
		return fmt.Errorf("spec.transactions: hold with consume")
	}
	for _, e := range append(append([]string{}, o.Plan...), deref(o.Hold, "commit")) {
		if e != "commit" && e != "abort" {
			return fmt.Errorf("spec.transactions.plan/hold: expected \"commit\" or \"abort\", got %q", e)
		}
	}
	return nil
}

func deref(p *string, dflt string) string {
	if p == nil {
		return dflt
	}
	return *p
}

type txnRun struct {
	s        *Spec
	o        *TxnOptions
	tc       TxnClient
	a        *Acker
	ctl      *Control
	out      *Out
	seq, k   int64
	fatal    bool
	outcomes map[string]int64
}

func (r *txnRun) stopped() bool {
	select {
	case <-r.ctl.Stop:
		return true
	default:
		return false
	}
}

func (r *txnRun) acked() int64 {
	r.a.mu.Lock()
	defer r.a.mu.Unlock()
	return r.a.total
}

func runTxn(s *Spec, ctl *Control, out *Out, info ClientInfo) error {
	g, err := newGen(s)
	if err != nil {
		return err
	}
	a := newAcker(s, 0, 0)
	tc, err := txnClient(s, a)
	if err != nil {
		return fmt.Errorf("transactional producer: %v", err)
	}
	out.Line(map[string]any{"type": "ready", "protocol": s.Protocol})
	t0, started := awaitStart(ctl, out, info, a, s, tc.Close)
	if !started {
		return nil
	}
	r := &txnRun{s: s, o: s.Transactions, tc: tc, a: a, ctl: ctl, out: out,
		outcomes: map[string]int64{"committed": 0, "aborted": 0, "unknown": 0}}
	done := make(chan struct{})
	go statLoop(t0, done, out, &a.meter)
	sleepUntil(t0, ctl.Stop)
	if r.o.Consume != nil {
		r.consume()
	} else {
		r.schedule(t0, g)
	}
	windowEnd := min(Now(), a.end)
	close(done)
	closeWithin(tc.Close, 3*time.Second)
	l := &sendLoop{s: s, a: a, sent: r.seq, sentMeas: r.seq}
	unacked := r.seq - a.doneCount()
	out.Line(struct {
		ProducerResult
		Transactions map[string]int64 `json:"transactions"`
	}{l.result(info, windowEnd, max(0, unacked), r.stopped() && windowEnd < a.end), r.outcomes})
	return nil
}

func (r *txnRun) due(t0, n int64) int64 {
	if r.s.Rate == nil {
		return Now()
	}
	interval := int64(math.Floor(1e9 / *r.s.Rate))
	return t0 + interval*int64(r.s.Index)/int64(max(1, r.s.Producers)) + n*interval
}

func (r *txnRun) begin() (int64, int64, bool) {
	if err := r.tc.Begin(); err != nil {
		r.out.Error("begin transaction %d: %v", r.k, err)
		r.fatal = true
		return 0, 0, false
	}
	return Now(), r.acked(), true
}

func (r *txnRun) send(rec Rec, partition int32) {
	if err := r.tc.Send(rec, partition); err != nil {
		r.a.Ack(&rec, -1, -1, err)
	}
	r.seq++
}

// schedule sends the spec's schedule in transactions of Messages; with Hold the last one stays open
// (flushed, a txn_held line) until stop.
func (r *txnRun) schedule(t0 int64, g *gen) {
	end := r.a.end
	for !r.stopped() && !r.fatal && r.due(t0, r.seq) < end {
		begin, acked0, ok := r.begin()
		if !ok {
			return
		}
		from := r.seq
		for i := 0; i < r.o.Messages && r.due(t0, r.seq) < end; i++ {
			intended := r.due(t0, r.seq)
			if !sleepUntil(intended, r.ctl.Stop) {
				break
			}
			rec := g.rec(r.seq, intended)
			rec.Sent = Now()
			r.send(rec, -1)
		}
		how := r.o.EndOf(r.k)
		if r.due(t0, r.seq) >= end && r.o.Hold != nil && !r.stopped() {
			_ = r.tc.Flush(context.Background())
			r.out.Line(map[string]any{"type": "txn_held", "txn": r.k, "seq_from": from, "seq_to": r.seq,
				"acked": min(r.seq-from, r.acked()-acked0), "t_ns": Now()})
			<-r.ctl.Stop
			how = *r.o.Hold
		}
		r.end(how, from, begin, acked0, nil)
	}
}

// consume is consume-transform-produce: one transaction per poll batch of the input; each output value is
// a new header (this producer, its sequence) followed by the input value's header.
func (r *txnRun) consume() {
	poller, ok := r.tc.(TxnPoller)
	if !ok {
		r.out.Error("this driver's transactional producer cannot consume")
		return
	}
	var committed int64
	for !r.stopped() && !r.fatal && committed < r.o.Consume.Records {
		recs, err := poller.Poll(context.Background(), r.o.Messages)
		if err != nil {
			r.a.mu.Lock()
			r.a.errors[ErrorName(err)]++
			r.a.mu.Unlock()
		}
		if len(recs) == 0 {
			continue
		}
		begin, acked0, ok := r.begin()
		if !ok {
			return
		}
		from := r.seq
		input := map[string][2]int64{}
		for _, in := range recs {
			now := Now()
			v := make([]byte, 2*HeaderSize)
			PutHeader(v, now, uint16(r.s.Index), r.seq)
			copy(v[HeaderSize:], in.Value[:min(len(in.Value), HeaderSize)])
			r.send(Rec{Value: v, Seq: r.seq, Intended: now, Sent: now}, in.Partition)
			key := fmt.Sprint(in.Partition)
			if rng, seen := input[key]; seen {
				input[key] = [2]int64{rng[0], in.Offset + 1}
			} else {
				input[key] = [2]int64{in.Offset, in.Offset + 1}
			}
		}
		if r.end(r.o.EndOf(r.k), from, begin, acked0, input) == "committed" {
			committed += int64(len(recs))
		}
	}
}

// end ends the open transaction as how says and writes its txn line.
func (r *txnRun) end(how string, from, begin, acked0 int64, input map[string][2]int64) string {
	endNs := Now()
	if how == "abort" {
		_ = r.tc.Flush(context.Background()) // the aborted records are written, then hidden by the abort marker
	}
	outcome, err, fatal := r.tc.End(context.Background(), how == "commit")
	r.fatal = r.fatal || fatal
	r.outcomes[outcome]++
	var text *string
	if err != nil {
		t := err.Error()
		text = &t
	}
	if input == nil {
		input = map[string][2]int64{}
	}
	r.out.Line(map[string]any{"type": "txn", "txn": r.k, "end": how, "outcome": outcome, "error": text,
		"seq_from": from, "seq_to": r.seq, "acked": max(0, min(r.seq-from, r.acked()-acked0)),
		"begin_ns": begin, "end_ns": endNs, "t_ns": Now(), "input": input})
	r.k++
	return outcome
}
