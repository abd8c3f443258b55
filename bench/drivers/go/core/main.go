package core

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// Client is one client library plugged into the core.
type Client struct {
	Name   string
	Module string // Go module path, for the version in hello/result
	// Knobs: the client takes the mapped knobs (docs/drivers.md, "Client configuration"); the core
	// parses spec.client_config into Spec.Knobs and refuses what the client lacks. Nil: native properties.
	Knobs *KnobSupport
	// Check, if set, refuses a client_config the client cannot honour, after Knobs (the error names the
	// key; the core names the client).
	Check       func(s *Spec) error
	NewProducer func(s *Spec, a *Acker) (Producer, error)
	NewConsumer func(s *Spec) (Consumer, error)
	// SendBlocks: Producer.Send waits for buffer space without telling; the core counts a Send that
	// returned more than 200 µs after it was called as a queue-full event.
	SendBlocks bool
}

// Info returns the client's name and module version (from the binary's build info).
func (c *Client) Info() ClientInfo {
	v := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == c.Module {
				v = d.Version
				if d.Replace != nil {
					v = d.Replace.Version
				}
			}
		}
	}
	return ClientInfo{Name: c.Name, Version: v}
}

// resultHead starts every result line (docs/drivers.md).
type resultHead struct {
	Type     string     `json:"type"`
	Protocol int        `json:"protocol"`
	Client   ClientInfo `json:"client"`
}

func head(info ClientInfo) resultHead {
	return resultHead{Type: "result", Protocol: Protocol, Client: info}
}

// failedResult is the result line of a driver that did not run its load.
type failedResult struct {
	resultHead
	Failed string `json:"failed"`
}

func failed(info ClientInfo, why string) failedResult {
	return failedResult{resultHead: head(info), Failed: why}
}

// Main runs one driver process: spec on stdin, JSON lines on stdout; it exits the process.
func Main(c *Client) {
	out := NewOut(os.Stdout)
	info := c.Info()
	fail := func(code int, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		out.Error("%s", msg)
		out.Line(failed(info, msg))
		pprof.StopCPUProfile()
		os.Exit(code)
	}
	if path := os.Getenv("KBENCH_DRIVER_CPUPROFILE"); path != "" { // for driver developers
		if f, err := os.Create(path); err == nil {
			_ = pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	// Ctrl-C reaches the whole process group: the coordinator stops the driver (stop or EOF), and the
	// driver still writes its result
	signal.Ignore(syscall.SIGINT)
	// a load generator trades memory for CPU: fewer GC cycles over the records in flight (GOGC overrides)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if err := CheckClock(); err != nil {
		fail(1, "%v", err)
	}
	s, ctl, err := ReadSpec(os.Stdin)
	if err != nil {
		fail(2, "%s: %v", c.Name, err)
	}
	if err := validate(s); err != nil {
		fail(2, "%s: %v", c.Name, err)
	}
	if s.ClientConfig == nil {
		s.ClientConfig = map[string]string{}
	}
	if err := c.checkConfig(s); err != nil {
		fail(2, "%s: %v", c.Name, err)
	}
	out.Line(map[string]any{"type": "hello", "protocol": Protocol, "now_ns": SysNow(), "client": info,
		"role": s.Role, "pid": os.Getpid()})
	if s.Records != nil {
		err = runRecords(s, ctl, out, info)
	} else if s.Transactions != nil {
		err = runTxn(s, ctl, out, info)
	} else if s.Role == "producer" {
		err = runProducer(c, s, ctl, out, info)
	} else if gc, gctl, gerr := groupClient(c, s, ctl, out); gerr != nil {
		fail(2, "%v", gerr)
	} else {
		err = runConsumer(gc, s, gctl, out, info)
	}
	if err != nil {
		fail(1, "%s: %v", c.Name, err)
	}
	pprof.StopCPUProfile()
	os.Exit(0)
}

// checkConfig parses the knobs into s.Knobs (a client that takes them) and runs the client's own check.
func (c *Client) checkConfig(s *Spec) error {
	if c.Knobs != nil {
		k, err := ParseKnobs(*c.Knobs, s.ClientConfig)
		if err != nil {
			return err
		}
		s.Knobs = k
	}
	if c.Check != nil {
		return c.Check(s)
	}
	return nil
}

func validate(s *Spec) error {
	if err := negotiate(s); err != nil {
		return err
	}
	if err := checkTxn(s); err != nil {
		return err
	}
	if err := checkRecords(s); err != nil {
		return err
	}
	switch {
	case s.Role != "producer" && s.Role != "consumer":
		return fmt.Errorf("spec.role: expected \"producer\" or \"consumer\", got %q", s.Role)
	case s.Bootstrap == "":
		return fmt.Errorf("spec.bootstrap: expected host:port")
	case s.Topic == "":
		return fmt.Errorf("spec.topic: expected a topic name")
	case s.Rate != nil && *s.Rate <= 0:
		return fmt.Errorf("spec.rate: expected a positive number or null, got %v", *s.Rate)
	case s.DurationNs <= 0 || s.WarmupNs < 0:
		return fmt.Errorf("spec.duration_ns/warmup_ns: expected duration > 0 and warmup >= 0")
	case s.Index < 0 || s.Index > 0xFFFF:
		return fmt.Errorf("spec.index: expected 0..65535, got %d", s.Index)
	}
	if s.Role == "consumer" && (s.Group == nil || *s.Group == "") {
		return fmt.Errorf("spec.group: a consumer needs a group id")
	}
	if s.Role == "producer" {
		if _, err := newGen(s); err != nil {
			return err
		}
	}
	return nil
}

// Brokers splits the bootstrap list.
func Brokers(s *Spec) []string { return strings.Split(s.Bootstrap, ",") }

// FlushTimeout is spec.flush_timeout_s (default 10 s).
func FlushTimeout(s *Spec) time.Duration {
	if s.FlushTimeoutS <= 0 {
		return 10 * time.Second
	}
	return time.Duration(s.FlushTimeoutS * float64(time.Second))
}

// statLoop writes m's stat line once a second until done is closed.
func statLoop(t0 int64, done <-chan struct{}, out *Out, m *meter) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			m.writeStat(out, t0, Now())
		}
	}
}
