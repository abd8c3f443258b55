// Command franz-go is a bare franz-go produce loop (benchmarks/bench_go_clients.py).
package main

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"kbench/drivers/barecore"
)

func main() {
	a := barecore.Parse()
	acks := map[string]kgo.Acks{"0": kgo.NoAck(), "1": kgo.LeaderAck(), "all": kgo.AllISRAcks()}[a.Acks]
	opts := []kgo.Opt{kgo.SeedBrokers(a.Brokers...), kgo.DefaultProduceTopic(a.Topic), kgo.RequiredAcks(acks)}
	if a.Acks != "all" {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		panic(err)
	}
	values := barecore.NewValues(a.Size)
	c := barecore.NewCounter(a)
	promise := func(_ *kgo.Record, err error) { c.Ack(err) }
	var sent int64
	for !c.Done() {
		cl.Produce(context.Background(), &kgo.Record{Value: values.Next()}, promise)
		sent++
	}
	_ = cl.Flush(context.Background())
	cl.Close()
	c.Report(a, sent)
}
