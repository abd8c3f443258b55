package core

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Knobs are the mapped producer settings of the Go clients without native properties (docs/drivers.md,
// "Client configuration"). A nil field was not set.
type Knobs struct {
	Acks          *int // 0, 1 or -1 (all)
	LingerMs      *float64
	BatchBytes    *int
	BatchMessages *int
	Compression   *string // none, gzip, snappy, lz4, zstd
	Partitioner   *string
	Idempotence   *bool
	MaxInFlight   *int
}

// KnobSupport says which knobs a client honours and which partitioner names it has.
type KnobSupport struct {
	Partitioners []string
	Unsupported  map[string]string // key -> why (e.g. "kafka-go has no idempotent producer")
}

var knobKeys = []string{"acks", "linger.ms", "batch.size", "batch.num.messages", "compression.type",
	"partitioner", "enable.idempotence", "max.in.flight"}

func positiveInt(key, v string) (*int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return nil, fmt.Errorf("%s: expected a positive integer, got %q", key, v)
	}
	return &n, nil
}

// ParseKnobs checks cfg against the knob table; any other key, or a knob the client lacks, is an error
// naming the key. A consumer takes the same keys (they configure producers only).
func ParseKnobs(sup KnobSupport, cfg map[string]string) (Knobs, error) {
	var k Knobs
	keys := make([]string, 0, len(cfg))
	for key := range cfg {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if err := k.set(sup, key, strings.TrimSpace(cfg[key])); err != nil {
			return k, fmt.Errorf("client_config %s", err)
		}
	}
	return k, nil
}

func (k *Knobs) set(sup KnobSupport, key, v string) error {
	if why, ok := sup.Unsupported[key+"="+v]; ok {
		return fmt.Errorf("%s=%s: not supported (%s)", key, v, why)
	}
	if why, ok := sup.Unsupported[key]; ok {
		return fmt.Errorf("%s: not supported (%s)", key, why)
	}
	var err error
	switch key {
	case "acks":
		a := map[string]int{"0": 0, "1": 1, "-1": -1, "all": -1}
		n, ok := a[strings.ToLower(v)]
		if !ok {
			return fmt.Errorf("acks: expected 0, 1, all or -1, got %q", v)
		}
		k.Acks = &n
	case "linger.ms":
		f, e := strconv.ParseFloat(v, 64)
		if e != nil || f < 0 {
			return fmt.Errorf("linger.ms: expected a number >= 0, got %q", v)
		}
		k.LingerMs = &f
	case "batch.size":
		k.BatchBytes, err = positiveInt(key, v)
	case "batch.num.messages":
		k.BatchMessages, err = positiveInt(key, v)
	case "compression.type":
		c := strings.ToLower(v)
		switch c {
		case "none", "gzip", "snappy", "lz4", "zstd":
			k.Compression = &c
		default:
			return fmt.Errorf("compression.type: expected none, gzip, snappy, lz4 or zstd, got %q", v)
		}
	case "partitioner":
		for _, p := range sup.Partitioners {
			if p == v {
				k.Partitioner = &v
				return nil
			}
		}
		return fmt.Errorf("partitioner: expected one of %s, got %q", strings.Join(sup.Partitioners, ", "), v)
	case "enable.idempotence":
		b, e := strconv.ParseBool(v)
		if e != nil {
			return fmt.Errorf("enable.idempotence: expected true or false, got %q", v)
		}
		k.Idempotence = &b
	case "max.in.flight":
		k.MaxInFlight, err = positiveInt(key, v)
	default:
		return fmt.Errorf("%s: unknown key (this client takes only %s)", key, strings.Join(knobKeys, ", "))
	}
	return err
}
