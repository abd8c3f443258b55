// Command confluent-kafka-go is a bare confluent-kafka-go produce loop (benchmarks/bench_go_clients.py).
package main

import (
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"kbench/drivers/barecore"
)

func main() {
	a := barecore.Parse()
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": a.Brokers[0], "acks": a.Acks})
	if err != nil {
		panic(err)
	}
	c := barecore.NewCounter(a)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range p.Events() {
			if m, ok := ev.(*kafka.Message); ok {
				c.Ack(m.TopicPartition.Error)
			}
		}
	}()
	values := barecore.NewValues(a.Size)
	tp := kafka.TopicPartition{Topic: &a.Topic, Partition: kafka.PartitionAny}
	var sent int64
	for !c.Done() {
		err := p.Produce(&kafka.Message{TopicPartition: tp, Value: values.Next()}, nil)
		if err != nil {
			time.Sleep(time.Millisecond) // queue full
			continue
		}
		sent++
	}
	p.Flush(10000)
	p.Close()
	<-done
	c.Report(a, sent)
}
