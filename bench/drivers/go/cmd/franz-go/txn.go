package main

// Protocol v2, transactional mode (docs/drivers.md, "Protocol v2: transactions"): kgo's transactional
// producer (TransactionalID, BeginTransaction, Flush / AbortBufferedRecords, EndTransaction) and, for
// consume-transform-produce, a GroupTransactSession (read_committed; End commits the polled offsets in
// the transaction and, when it did not commit, resets the consumer to the group's committed offsets).
// A consumer spec's isolation_level goes to kgo's FetchIsolationLevel (groupConsumer).

import (
	"context"
	"errors"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"kbench/drivers/core"
)

func init() {
	core.SetTxnClient(newTxnClient)
	core.SetIsolation()
}

// isolationOpts: kgo reads uncommitted by default.
func isolationOpts(s *core.Spec) []kgo.Opt {
	if s.IsolationLevel != nil && *s.IsolationLevel == "read_committed" {
		return []kgo.Opt{kgo.FetchIsolationLevel(kgo.ReadCommitted())}
	}
	return nil
}

type txnClient struct {
	cl      *kgo.Client
	sess    *kgo.GroupTransactSession // consume-transform-produce, else nil
	promise func(*kgo.Record, error)
}

func newTxnClient(s *core.Spec, a *core.Acker) (core.TxnClient, error) {
	o := s.Transactions
	opts := append(producerOpts(s), kgo.TransactionalID(o.TransactionalID))
	if o.TimeoutMs != nil {
		opts = append(opts, kgo.TransactionTimeout(time.Duration(*o.TimeoutMs)*time.Millisecond))
	}
	t := &txnClient{}
	if o.Consume != nil {
		opts = append(opts, kgo.ConsumerGroup(o.Consume.Group), kgo.ConsumeTopics(o.Consume.Topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.RecordPartitioner(kgo.ManualPartitioner()))
		sess, err := kgo.NewGroupTransactSession(opts...)
		if err != nil {
			return nil, err
		}
		t.sess, t.cl = sess, sess.Client()
	} else {
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return nil, err
		}
		t.cl = cl
	}
	if err := metadata(t.cl, s.Topic); err != nil {
		t.Close()
		return nil, err
	}
	// InitProducerId now, as Java's initTransactions (kgo would send it with the first produce): an
	// earlier producer with this transactional.id is fenced at start
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := t.cl.ProducerID(ctx); err != nil {
		t.Close()
		return nil, err
	}
	t.promise = func(r *kgo.Record, err error) {
		f := (*frec)(unsafe.Pointer(r))
		a.Ack(&f.rec, r.Partition, r.Offset, err)
	}
	return t, nil
}

func (t *txnClient) Begin() error {
	if t.sess != nil {
		return t.sess.Begin()
	}
	return t.cl.BeginTransaction()
}

func (t *txnClient) Send(r core.Rec, partition int32) error {
	f := &frec{rec: r}
	f.kr.Key, f.kr.Value, f.kr.Timestamp = r.Key, r.Value, core.Wall(r.Sent)
	if partition >= 0 {
		f.kr.Partition = partition
	}
	t.cl.Produce(context.Background(), &f.kr, t.promise)
	return nil
}

func (t *txnClient) Flush(ctx context.Context) error { return t.cl.Flush(ctx) }

// fatal: errors after which kgo's transactional producer cannot go on.
func fatal(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed) || errors.Is(err, kerr.InvalidProducerIDMapping)
}

func (t *txnClient) End(ctx context.Context, commit bool) (string, error, bool) {
	if t.sess != nil {
		committed, err := t.sess.End(ctx, kgo.TransactionEndTry(commit))
		switch {
		case committed:
			return "committed", nil, false
		case err == nil:
			return "aborted", nil, false
		}
		return "unknown", err, fatal(err)
	}
	var err error
	if commit {
		err = t.cl.Flush(ctx)
	} else {
		err = t.cl.AbortBufferedRecords(ctx)
	}
	if err == nil {
		err = t.cl.EndTransaction(ctx, kgo.TransactionEndTry(commit))
	}
	if err == nil {
		if commit {
			return "committed", nil, false
		}
		return "aborted", nil, false
	}
	// kgo: a commit that was not attempted, or an abortable one, is retried as an abort
	if commit && (errors.Is(err, kerr.OperationNotAttempted) || errors.Is(err, kerr.TransactionAbortable)) {
		if aerr := t.cl.EndTransaction(ctx, kgo.TryAbort); aerr == nil {
			return "aborted", err, false
		}
	}
	return "unknown", err, fatal(err)
}

// Poll is consume-transform-produce's read: at most max records, waiting at most core.PollWait.
func (t *txnClient) Poll(ctx context.Context, max int) ([]core.Record, error) {
	pctx, cancel := context.WithTimeout(ctx, core.PollWait)
	defer cancel()
	fs := t.sess.PollRecords(pctx, max)
	var first error
	fs.EachError(func(_ string, _ int32, err error) {
		if first == nil && err != context.DeadlineExceeded && err != context.Canceled {
			first = err
		}
	})
	var out []core.Record
	fs.EachRecord(func(r *kgo.Record) {
		out = append(out, core.Record{Partition: r.Partition, Offset: r.Offset, Value: r.Value})
	})
	return out, first
}

func (t *txnClient) Close() {
	if t.sess != nil {
		t.sess.Close()
		return
	}
	t.cl.Close()
}
