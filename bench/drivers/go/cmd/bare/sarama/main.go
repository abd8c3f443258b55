// Command sarama is a bare sarama produce loop (benchmarks/bench_go_clients.py).
package main

import (
	"sync"

	"github.com/IBM/sarama"

	"kbench/drivers/barecore"
)

func main() {
	a := barecore.Parse()
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = map[string]sarama.RequiredAcks{"0": sarama.NoResponse, "1": sarama.WaitForLocal,
		"all": sarama.WaitForAll}[a.Acks]
	p, err := sarama.NewAsyncProducer(a.Brokers, cfg)
	if err != nil {
		panic(err)
	}
	c := barecore.NewCounter(a)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range p.Successes() {
			c.Ack(nil)
		}
	}()
	go func() {
		defer wg.Done()
		for e := range p.Errors() {
			c.Ack(e.Err)
		}
	}()
	values := barecore.NewValues(a.Size)
	var sent int64
	for !c.Done() {
		p.Input() <- &sarama.ProducerMessage{Topic: a.Topic, Value: sarama.ByteEncoder(values.Next())}
		sent++
	}
	p.AsyncClose()
	wg.Wait()
	c.Report(a, sent)
}
