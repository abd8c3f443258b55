package core

import "fmt"

// GroupExtra holds the group options a client must declare it honours (SetGroupFeatures): static
// membership, the offset reset, the group protocol, the heartbeat interval and the commit metadata (docs/drivers.md, "Protocol v2"). A nil field keeps
// the client's default; a set one the client has not declared is refused at spec time (exit 2).
type GroupExtra struct {
	InstanceID      *string `json:"instance_id"`       // group.instance.id (static membership)
	AutoOffsetReset *string `json:"auto_offset_reset"` // "earliest" | "latest" | "none"
	GroupProtocol   *string `json:"group_protocol"`    // "classic" | "consumer" (KIP-848)
	HeartbeatMs     *int    `json:"heartbeat_interval_ms"`
	CommitMetadata  *string `json:"commit_metadata"` // the metadata string of every commit
}

// GroupFeatures says which of GroupExtra's options a driver's group consumer honours.
type GroupFeatures struct {
	InstanceID       bool
	AutoOffsetReset  bool
	ConsumerProtocol bool // group_protocol "consumer" (KIP-848); "classic" is always accepted
	Heartbeat        bool // heartbeat_interval_ms
	CommitMetadata   bool // commit_metadata: the client's commit API carries a metadata string
}

var groupFeatures GroupFeatures

// SetGroupFeatures declares the GroupExtra options the driver's group consumer honours (from its group.go).
func SetGroupFeatures(f GroupFeatures) { groupFeatures = f }

func checkGroupExtra(o *GroupOptions) error {
	switch {
	case o.InstanceID != nil && *o.InstanceID == "":
		return fmt.Errorf("spec.group_options.instance_id: expected a non-empty id or null")
	case o.InstanceID != nil && !groupFeatures.InstanceID:
		return fmt.Errorf("spec.group_options.instance_id: this driver has no static membership")
	case o.AutoOffsetReset != nil && !contains([]string{"earliest", "latest", "none"}, *o.AutoOffsetReset):
		return fmt.Errorf("spec.group_options.auto_offset_reset: expected \"earliest\", \"latest\" or \"none\", got %q",
			*o.AutoOffsetReset)
	case o.AutoOffsetReset != nil && !groupFeatures.AutoOffsetReset:
		return fmt.Errorf("spec.group_options.auto_offset_reset: this driver cannot set it")
	case o.GroupProtocol != nil && *o.GroupProtocol != "classic" && *o.GroupProtocol != "consumer":
		return fmt.Errorf("spec.group_options.group_protocol: expected \"classic\" or \"consumer\", got %q",
			*o.GroupProtocol)
	case o.GroupProtocol != nil && *o.GroupProtocol == "consumer" && !groupFeatures.ConsumerProtocol:
		return fmt.Errorf("spec.group_options.group_protocol: this driver has no KIP-848 consumer protocol")
	case o.GroupProtocol != nil && *o.GroupProtocol == "consumer" &&
		(o.Assignor != nil || o.SessionTimeoutMs != nil || o.HeartbeatMs != nil):
		return fmt.Errorf("spec.group_options: group_protocol \"consumer\" takes no assignor, session_timeout_ms or " +
			"heartbeat_interval_ms (the broker assigns and times sessions)")
	case o.HeartbeatMs != nil && *o.HeartbeatMs <= 0:
		return fmt.Errorf("spec.group_options.heartbeat_interval_ms: expected a positive number of ms")
	case o.HeartbeatMs != nil && !groupFeatures.Heartbeat:
		return fmt.Errorf("spec.group_options.heartbeat_interval_ms: this driver cannot set it")
	case o.CommitMetadata != nil && !groupFeatures.CommitMetadata:
		return fmt.Errorf("spec.group_options.commit_metadata: this client's commits carry no metadata")
	}
	return nil
}
