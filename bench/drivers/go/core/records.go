package core

// Protocol v2, explicit-records mode (docs/drivers.md, "Protocol v2: explicit records"): a producer spec
// with a records list sends exactly those records, in order, one in flight (each waits for its ack), and
// reports one [partition, offset, error] per record in its result. A client registers its records
// producer with SetRecordsClient (from an init of its records.go), naming the record features it cannot
// send; the core refuses a spec using one (exit 2, "unsupported record feature NAME: reason").

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"
)

// RecordSpec is one entry of spec.records: base64 key/value (null = a null key/value, "" = empty),
// headers [[name, base64 or null]...], an optional partition and CreateTime.
type RecordSpec struct {
	Partition   *int32      `json:"partition"`
	Key         *string     `json:"key"`
	Value       *string     `json:"value"`
	Headers     [][]*string `json:"headers"`
	TimestampMs *int64      `json:"timestamp_ms"`
}

// RecordsSpec is the part of a v2 spec the explicit-records mode adds (embedded in Spec).
type RecordsSpec struct {
	Records []RecordSpec `json:"records"`
}

// Header is one record header; a nil Value is a null header value.
type Header struct {
	Key   string
	Value []byte
}

// ExplicitRecord is a decoded spec record: nil Key/Value are null, non-nil empty ones empty; Partition
// -1 leaves the choice to the client's partitioner; a zero Timestamp leaves it to the client.
type ExplicitRecord struct {
	Partition int32
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time
}

// RecordsProducer sends one record and waits for its ack.
type RecordsProducer interface {
	Send(ctx context.Context, r ExplicitRecord) (partition int32, offset int64, err error)
	Close()
}

// RecordsClient is a client's records producer: New builds it (explicit: every record has a partition),
// Unsupported names the features it cannot send (feature name → why).
type RecordsClient struct {
	New         func(s *Spec, explicit bool) (RecordsProducer, error)
	Unsupported map[string]string
}

var recordsClient *RecordsClient

// SetRecordsClient registers the driver's records producer.
func SetRecordsClient(c RecordsClient) { recordsClient = &c }

// RecordFeatures are the names docs/drivers.md gives the kinds of record a spec may use, in order.
var RecordFeatures = []string{"partition", "partition_mix", "null_key", "empty_key", "null_value",
	"empty_value", "headers", "null_header_value", "empty_header_value", "timestamp"}

func unb64(p *string, what string) ([]byte, error) {
	if p == nil {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(*p)
	if err != nil {
		return nil, fmt.Errorf("%s: not base64: %v", what, err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// DecodeRecords decodes spec.records and names the features they use.
func DecodeRecords(specs []RecordSpec) ([]ExplicitRecord, map[string]bool, error) {
	used := map[string]bool{}
	out := make([]ExplicitRecord, 0, len(specs))
	withPart := 0
	for i, rs := range specs {
		r := ExplicitRecord{Partition: -1}
		if rs.Partition != nil {
			if *rs.Partition < 0 {
				return nil, nil, fmt.Errorf("spec.records[%d].partition: expected >= 0 or null", i)
			}
			r.Partition = *rs.Partition
			used["partition"] = true
			withPart++
		}
		var err error
		if r.Key, err = unb64(rs.Key, fmt.Sprintf("spec.records[%d].key", i)); err != nil {
			return nil, nil, err
		}
		if r.Value, err = unb64(rs.Value, fmt.Sprintf("spec.records[%d].value", i)); err != nil {
			return nil, nil, err
		}
		for name, b := range map[string][]byte{"key": r.Key, "value": r.Value} {
			if b == nil {
				used["null_"+name] = true
			} else if len(b) == 0 {
				used["empty_"+name] = true
			}
		}
		for j, h := range rs.Headers {
			if len(h) != 2 || h[0] == nil {
				return nil, nil, fmt.Errorf("spec.records[%d].headers[%d]: expected [name, base64 or null]", i, j)
			}
			v, err := unb64(h[1], fmt.Sprintf("spec.records[%d].headers[%d]", i, j))
			if err != nil {
				return nil, nil, err
			}
			used["headers"] = true
			if v == nil {
				used["null_header_value"] = true
			} else if len(v) == 0 {
				used["empty_header_value"] = true
			}
			r.Headers = append(r.Headers, Header{Key: *h[0], Value: v})
		}
		if rs.TimestampMs != nil {
			if *rs.TimestampMs < 0 {
				return nil, nil, fmt.Errorf("spec.records[%d].timestamp_ms: expected >= 0 or null", i)
			}
			r.Timestamp = time.UnixMilli(*rs.TimestampMs)
			used["timestamp"] = true
		}
		out = append(out, r)
	}
	if withPart > 0 && withPart < len(specs) {
		used["partition_mix"] = true
	}
	return out, used, nil
}

// checkRecords refuses a records spec the driver cannot send (before hello, exit 2).
func checkRecords(s *Spec) error {
	if s.Records == nil {
		return nil
	}
	switch {
	case s.Protocol < ProtocolV2:
		return fmt.Errorf("spec.records: needs protocol %d", ProtocolV2)
	case s.Role != "producer":
		return fmt.Errorf("spec.records: only a producer takes them")
	case s.Transactions != nil:
		return fmt.Errorf("spec.records: not with transactions")
	case len(s.Records) == 0:
		return fmt.Errorf("spec.records: expected at least one record")
	case recordsClient == nil:
		return fmt.Errorf("spec.records: this driver has no explicit-records producer")
	}
	_, used, err := DecodeRecords(s.Records)
	if err != nil {
		return err
	}
	for _, f := range RecordFeatures {
		if why, no := recordsClient.Unsupported[f]; no && used[f] {
			return fmt.Errorf("unsupported record feature %s: %s", f, why)
		}
	}
	return nil
}

// recordsResult is a records-mode producer's result line.
type recordsResult struct {
	resultHead
	Role    string  `json:"role"`
	Index   int     `json:"index"`
	Records [][]any `json:"records"`
	Sent    int     `json:"sent"`
}

func runRecords(s *Spec, ctl *Control, out *Out, info ClientInfo) error {
	recs, _, err := DecodeRecords(s.Records)
	if err != nil {
		return err
	}
	explicit := len(recs) > 0 && recs[0].Partition >= 0
	p, err := recordsClient.New(s, explicit)
	if err != nil {
		return fmt.Errorf("records producer: %v", err)
	}
	out.Line(map[string]any{"type": "ready", "protocol": s.Protocol})
	select {
	case <-ctl.Start:
	case <-ctl.Stop:
		closeWithin(p.Close, 3*time.Second)
		out.Line(failed(info, "stopped before start"))
		return nil
	}
	acks := make([][]any, 0, len(recs))
	for _, r := range recs {
		select {
		case <-ctl.Stop:
			acks = append(acks, []any{-1, -1, "stopped"})
			continue
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), FlushTimeout(s))
		part, off, err := p.Send(ctx, r)
		cancel()
		if err != nil {
			acks = append(acks, []any{-1, -1, err.Error()})
		} else {
			acks = append(acks, []any{part, off, nil})
		}
	}
	closeWithin(p.Close, 3*time.Second)
	out.Line(recordsResult{resultHead: head(info), Role: "producer", Index: s.Index, Records: acks, Sent: len(recs)})
	return nil
}
