// Command kafka-go is a bare kafka-go produce loop (benchmarks/bench_go_clients.py). kafka-go's async
// Writer queues without limit, so this loop bounds the records in flight as the driver does.
package main

import (
	"context"

	"github.com/segmentio/kafka-go"

	"kbench/drivers/barecore"
)

func main() {
	a := barecore.Parse()
	c := barecore.NewCounter(a)
	sem := make(chan struct{}, 50000)
	w := &kafka.Writer{Addr: kafka.TCP(a.Brokers...), Topic: a.Topic, Async: true,
		RequiredAcks: map[string]kafka.RequiredAcks{"0": kafka.RequireNone, "1": kafka.RequireOne,
			"all": kafka.RequireAll}[a.Acks],
		Completion: func(msgs []kafka.Message, err error) {
			for range msgs {
				c.Ack(err)
				<-sem
			}
		}}
	values := barecore.NewValues(a.Size)
	var sent int64
	for !c.Done() {
		sem <- struct{}{}
		if err := w.WriteMessages(context.Background(), kafka.Message{Value: values.Next()}); err != nil {
			<-sem
			c.Ack(err)
		}
		sent++
	}
	_ = w.Close()
	c.Report(a, sent)
}
