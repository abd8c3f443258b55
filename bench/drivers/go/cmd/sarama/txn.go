package main

// Protocol v2, transactional mode (docs/drivers.md, "Protocol v2: transactions"): sarama's transactional
// AsyncProducer (Producer.Transaction.ID: NewAsyncProducer initialises the producer id; BeginTxn,
// CommitTxn, AbortTxn). Consume-transform-produce is not built here (AddMessageToTxn with a
// ConsumerGroup could express it): the driver refuses transactions.consume. A consumer spec's
// isolation_level goes to Consumer.IsolationLevel (config).

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"kbench/drivers/core"
)

func init() {
	core.SetTxnClient(newTxnClient)
	core.SetIsolation()
}

// isolation sets a consumer's isolation level from the spec (sarama reads uncommitted by default).
func isolation(s *core.Spec, c *sarama.Config) {
	if s.IsolationLevel != nil && *s.IsolationLevel == "read_committed" {
		c.Consumer.IsolationLevel = sarama.ReadCommitted
	}
}

type txnProducer struct {
	client     sarama.Client
	ap         sarama.AsyncProducer
	topic      string
	wg         sync.WaitGroup
	mu         sync.Mutex
	sent, done int64
}

func newTxnClient(s *core.Spec, a *core.Acker) (core.TxnClient, error) {
	o := s.Transactions
	if o.Consume != nil {
		return nil, errors.New("sarama driver: transactions.consume (consume-transform-produce) is not built")
	}
	cfg, err := config(s)
	if err != nil {
		return nil, err
	}
	cfg.Producer.Idempotent, cfg.Producer.RequiredAcks, cfg.Net.MaxOpenRequests = true, sarama.WaitForAll, 1
	cfg.Producer.Transaction.ID = o.TransactionalID
	if o.TimeoutMs != nil {
		cfg.Producer.Transaction.Timeout = time.Duration(*o.TimeoutMs) * time.Millisecond
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sarama: transactional config: %v", err)
	}
	client, err := sarama.NewClient(core.Brokers(s), cfg)
	if err != nil {
		return nil, err
	}
	if parts, err := client.Partitions(s.Topic); err != nil || len(parts) == 0 {
		client.Close()
		return nil, fmt.Errorf("metadata of topic %s: %v", s.Topic, err)
	}
	ap, err := sarama.NewAsyncProducerFromClient(client) // InitProducerId: an older producer is fenced now
	if err != nil {
		client.Close()
		return nil, err
	}
	p := &txnProducer{client: client, ap: ap, topic: s.Topic}
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		for m := range ap.Successes() {
			a.Ack(m.Metadata.(*core.Rec), m.Partition, m.Offset, nil)
			p.resolved()
		}
	}()
	go func() {
		defer p.wg.Done()
		for e := range ap.Errors() {
			a.Ack(e.Msg.Metadata.(*core.Rec), -1, -1, named(e.Err))
			p.resolved()
		}
	}()
	return p, nil
}

func (p *txnProducer) resolved() {
	p.mu.Lock()
	p.done++
	p.mu.Unlock()
}

func (p *txnProducer) Begin() error { return p.ap.BeginTxn() }

func (p *txnProducer) Send(r core.Rec, partition int32) error {
	if partition >= 0 {
		return errors.New("sarama driver: explicit partitions are not built")
	}
	x := &smsg{rec: r}
	m := &x.m
	m.Value, m.Metadata, m.Timestamp, m.Topic = sarama.ByteEncoder(r.Value), &x.rec, core.Wall(r.Sent), p.topic
	if r.Key != nil {
		m.Key = sarama.ByteEncoder(r.Key)
	}
	p.mu.Lock()
	p.sent++
	p.mu.Unlock()
	p.ap.Input() <- m
	return nil
}

// Flush waits until every record sent is acked or failed.
func (p *txnProducer) Flush(ctx context.Context) error {
	for {
		p.mu.Lock()
		left := p.sent - p.done
		p.mu.Unlock()
		if left <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// kafkaNames: the Kafka error names of the transaction errors sarama v1.61.1 has no text for
var kafkaNames = map[sarama.KError]string{47: "INVALID_PRODUCER_EPOCH", 48: "INVALID_TXN_STATE",
	53: "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", 90: "PRODUCER_FENCED"}

// txnError names a KError by its Kafka name where sarama does not (PRODUCER_FENCED is "Unknown error ... 90").
func txnError(err error) error {
	var ke sarama.KError
	if errors.As(err, &ke) {
		if name, ok := kafkaNames[ke]; ok {
			return &core.NamedError{Name: fmt.Sprintf("%s (KError %d)", name, int16(ke)), Err: err}
		}
	}
	return err
}

func (p *txnProducer) End(ctx context.Context, commit bool) (string, error, bool) {
	if !commit {
		if err := p.ap.AbortTxn(); err != nil {
			return "unknown", txnError(err), p.ap.TxnStatus()&sarama.ProducerTxnFlagFatalError != 0
		}
		return "aborted", nil, false
	}
	err := txnError(p.ap.CommitTxn()) // flushes first
	if err == nil {
		return "committed", nil, false
	}
	if st := p.ap.TxnStatus(); st&sarama.ProducerTxnFlagAbortableError != 0 && st&sarama.ProducerTxnFlagFatalError == 0 {
		if aerr := p.ap.AbortTxn(); aerr == nil {
			return "aborted", err, false
		}
	}
	return "unknown", err, p.ap.TxnStatus()&sarama.ProducerTxnFlagFatalError != 0
}

func (p *txnProducer) Close() {
	p.ap.AsyncClose()
	p.wg.Wait()
	p.client.Close()
}
