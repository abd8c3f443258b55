package core

import (
	"fmt"
	"math"
	"math/rand"
)

const (
	maxMessageSize = 1 << 20
	block          = 64
	poolSize       = 4 << 20
	text           = "kbench payload: the quick brown fox jumps over the lazy dog, 0123456789abcdefghijklmnopqrstuv"
)

// Sizer draws message sizes (header included, at least HeaderSize).
type Sizer struct {
	fixed   int
	draw    func() float64
	maxSize int
}

func need(v *float64, dist, key string) (float64, error) {
	if v == nil {
		return 0, fmt.Errorf("message_size: distribution %q needs %q", dist, key)
	}
	return *v, nil
}

// NewSizer builds the size distribution of a spec, as bench.scenario.types.MessageSize.sample does:
// uniform integers in [min, max], normal draws rounded and clipped to [min, max].
func NewSizer(s SizeSpec, rng *rand.Rand) (*Sizer, error) {
	lo, hi := 1.0, float64(maxMessageSize)
	if s.Min != nil {
		lo = *s.Min
	}
	if s.Max != nil {
		hi = *s.Max
	}
	switch s.Distribution {
	case "fixed", "":
		v, err := need(s.Value, "fixed", "value")
		if err != nil {
			return nil, err
		}
		n := max(HeaderSize, int(v))
		return &Sizer{fixed: n, maxSize: n}, nil
	case "uniform":
		if s.Min == nil || s.Max == nil || hi < lo {
			return nil, fmt.Errorf("message_size: distribution \"uniform\" needs min <= max")
		}
		span := int64(hi) - int64(lo) + 1
		return &Sizer{draw: func() float64 { return lo + float64(rng.Int63n(span)) }, maxSize: int(hi)}, nil
	case "normal":
		mean, err := need(s.Mean, "normal", "mean")
		if err != nil {
			return nil, err
		}
		sd, err := need(s.Stddev, "normal", "stddev")
		if err != nil {
			return nil, err
		}
		if s.Max == nil {
			hi = math.Max(lo, mean+6*sd)
		}
		draw := func() float64 { return math.Min(hi, math.Max(lo, math.Round(mean+rng.NormFloat64()*sd))) }
		return &Sizer{draw: draw, maxSize: int(hi)}, nil
	case "choice":
		return newChoice(s, rng)
	}
	return nil, fmt.Errorf("message_size: distribution %q is not supported by this driver", s.Distribution)
}

func newChoice(s SizeSpec, rng *rand.Rand) (*Sizer, error) {
	if len(s.Values) == 0 {
		return nil, fmt.Errorf("message_size: distribution \"choice\" needs \"values\"")
	}
	w := s.Weights
	if len(w) == 0 {
		w = make([]float64, len(s.Values))
		for i := range w {
			w[i] = 1
		}
	}
	if len(w) != len(s.Values) {
		return nil, fmt.Errorf("message_size: \"weights\" has %d entries for %d values", len(w), len(s.Values))
	}
	cum, total, hi := make([]float64, len(w)), 0.0, 0.0
	for i, x := range w {
		total += x
		cum[i] = total
		hi = math.Max(hi, s.Values[i])
	}
	draw := func() float64 {
		u := rng.Float64() * total
		for i, c := range cum {
			if u < c {
				return s.Values[i]
			}
		}
		return s.Values[len(s.Values)-1]
	}
	return &Sizer{draw: draw, maxSize: int(hi)}, nil
}

// Next returns the next message size.
func (z *Sizer) Next() int {
	if z.draw == nil {
		return z.fixed
	}
	return max(HeaderSize, int(z.draw()))
}

// Pool is a byte pool to slice message bodies from: 64-byte blocks, each random or (with probability
// compressibility) a fixed text block. Bodies are taken one after the other (from a random start), so
// the copies read memory in order: random offsets into 4 MiB cost a cache miss per message.
type Pool struct {
	data []byte
	off  int
}

// NewPool fills a pool for messages up to maxSize bytes.
func NewPool(p PayloadSpec, maxSize int, rng *rand.Rand) (*Pool, error) {
	if p.Kind != "" && p.Kind != "random" {
		return nil, fmt.Errorf("payload: kind %q is not supported by this driver (only \"random\")", p.Kind)
	}
	n := (poolSize + maxSize + block - 1) / block * block
	data := make([]byte, n)
	rng.Read(data)
	var tb [block]byte
	copy(tb[:], text)
	for off := 0; off < n; off += block {
		if rng.Float64() < p.Compressibility {
			copy(data[off:off+block], tb[:])
		}
	}
	return &Pool{data: data, off: rng.Intn(poolSize)}, nil
}

// Fill copies the next pool bytes into b.
func (p *Pool) Fill(b []byte) {
	if p.off+len(b) > len(p.data) {
		p.off = 0
	}
	copy(b, p.data[p.off:p.off+len(b)])
	p.off += len(b)
}

// Keys draws message keys.
type Keys struct {
	kind string
	keys [][]byte
	rr   int
	rng  *rand.Rand
	zipf *rand.Zipf
}

// NewKeys builds the key stream of producer index.
func NewKeys(k KeySpec, index int, seed int64) (*Keys, error) {
	ks := &Keys{kind: k.Kind, rr: index, rng: rand.New(rand.NewSource(seed + 7919*int64(index)))}
	if k.Kind == "none" || k.Kind == "" {
		ks.kind = "none"
		return ks, nil
	}
	n := max(1, k.Count)
	for i := 0; i < n; i++ {
		ks.keys = append(ks.keys, []byte(fmt.Sprintf("key-%d", i)))
	}
	switch k.Kind {
	case "round_robin", "uniform":
	case "zipf":
		s := k.ZipfS
		if s == 0 {
			s = 1.2
		}
		if s <= 1 {
			return nil, fmt.Errorf("keys: zipf_s must be > 1, got %v", s)
		}
		// unbounded zipf, then modulo count: (numpy zipf(s) - 1) % count, as bench.load.payload.KeyStream
		ks.zipf = rand.NewZipf(ks.rng, s, 1, 1<<62)
	default:
		return nil, fmt.Errorf("keys: kind %q is not supported by this driver", k.Kind)
	}
	return ks, nil
}

// Next returns the next key (nil: no key).
func (k *Keys) Next() []byte {
	switch k.kind {
	case "round_robin":
		i := k.rr % len(k.keys)
		k.rr++
		return k.keys[i]
	case "uniform":
		return k.keys[k.rng.Intn(len(k.keys))]
	case "zipf":
		return k.keys[k.zipf.Uint64()%uint64(len(k.keys))]
	}
	return nil
}
