package core

import (
	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram range of the protocol: 1 µs .. 1 h, 3 significant figures.
const (
	LowestUs  = 1
	HighestUs = 3_600_000_000
	SigFigs   = 3
)

// NewHist returns an empty histogram with the protocol's range.
func NewHist() *hdr.Histogram { return hdr.New(LowestUs, HighestUs, SigFigs) }

// Encode returns the V2 compressed base64 form.
func Encode(h *hdr.Histogram) string {
	b, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// Series is the per-second series of a window starting at Origin.
type Series struct {
	Origin     int64
	count      []int64
	bytes      []int64
	errors     []int64
	outOfRange int64
	hists      map[int]*hdr.Histogram
}

// SeriesDoc is the series as written in a result.
type SeriesDoc struct {
	OriginNs   int64             `json:"origin_ns"`
	IntervalS  float64           `json:"interval_s"`
	Count      []int64           `json:"count"`
	Bytes      []int64           `json:"bytes"`
	Errors     []int64           `json:"errors"`
	OutOfRange int64             `json:"out_of_range"`
	Hists      map[string]string `json:"hists"`
}

// NewSeries starts a series at origin (t0 + warmup).
func NewSeries(origin int64) *Series { return &Series{Origin: origin, hists: map[int]*hdr.Histogram{}} }

func (s *Series) index(t int64) int {
	if t < s.Origin {
		return -1
	}
	k := int((t - s.Origin) / 1_000_000_000)
	for len(s.count) <= k {
		s.count = append(s.count, 0)
		s.bytes = append(s.bytes, 0)
		s.errors = append(s.errors, 0)
	}
	return k
}

// Add counts one record of size bytes at time t, with latency latUs (< 0: not timed).
func (s *Series) Add(t int64, size int, latUs int64) {
	k := s.index(t)
	if k < 0 {
		return
	}
	s.count[k]++
	s.bytes[k] += int64(size)
	if latUs < 0 {
		return
	}
	h := s.hists[k]
	if h == nil {
		h = NewHist()
		s.hists[k] = h
	}
	if h.RecordValue(latUs) != nil {
		s.outOfRange++
	}
}

// Merged is the sum of the interval histograms: every timed record is in exactly one.
func (s *Series) Merged() *hdr.Histogram {
	h := NewHist()
	for _, x := range s.hists {
		h.Merge(x)
	}
	return h
}

// LastP99 is the p99 of the latest interval with latencies, or nil.
func (s *Series) LastP99() *int64 {
	k := -1
	for i := range s.hists {
		k = max(k, i)
	}
	if k < 0 {
		return nil
	}
	v := s.hists[k].ValueAtQuantile(99)
	return &v
}

// Error counts one failed record at time t.
func (s *Series) Error(t int64) {
	if k := s.index(t); k >= 0 {
		s.errors[k]++
	}
}

// OutOfRange counts a latency the whole-run histogram refused.
func (s *Series) OutOfRange() { s.outOfRange++ }

// Doc returns the series covering at least until end.
func (s *Series) Doc(end int64) SeriesDoc {
	if end > s.Origin {
		s.index(end - 1)
	}
	d := SeriesDoc{OriginNs: s.Origin, IntervalS: 1.0, Count: s.count, Bytes: s.bytes, Errors: s.errors,
		OutOfRange: s.outOfRange, Hists: map[string]string{}}
	if d.Count == nil {
		d.Count, d.Bytes, d.Errors = []int64{}, []int64{}, []int64{}
	}
	for k, h := range s.hists {
		d.Hists[itoa(k)] = Encode(h)
	}
	return d
}

func itoa(k int) string {
	if k == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for k > 0 {
		i--
		b[i] = byte('0' + k%10)
		k /= 10
	}
	return string(b[i:])
}
