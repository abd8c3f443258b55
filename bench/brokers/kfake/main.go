// kbench-kfake: franz-go's in-memory Kafka cluster (pkg/kfake) as a process that kbench starts.
//
// It prints one "listening HOST:PORT" line per broker once every listener is bound, then
// "ready", and runs until SIGTERM/SIGINT. With -control ADDR it serves a tiny HTTP API on
// loopback for per-broker fault injection inside the one process:
//
//	POST /remove?node=N            close broker N's listener and drop it from the cluster
//	POST /add?node=N&port=P        bring broker N back on port P
//	POST /shuffle-leaders          new random leaders for every partition
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kversion"
)

type kv map[string]string

func (f kv) String() string { return "" }

func (f kv) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("expected key=value, got %q", s)
	}
	f[k] = v
	return nil
}

// advertised reports a fixed host in Addr(), so metadata names -advertise while we bind -bind.
type advertised struct {
	net.Listener
	host string
}

type addr struct{ hostport string }

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return a.hostport }

func (l advertised) Addr() net.Addr {
	_, port, _ := net.SplitHostPort(l.Listener.Addr().String())
	return addr{net.JoinHostPort(l.host, port)}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kbench-kfake: "+format+"\n", args...)
	os.Exit(2)
}

func parsePorts(s string) []int {
	var ports []int
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 || n > 65535 {
			fail("-ports: expected comma-separated port numbers, got %q", s)
		}
		ports = append(ports, n)
	}
	return ports
}

func main() {
	ports := flag.String("ports", "9092", "comma-separated client ports, one per broker")
	bind := flag.String("bind", "127.0.0.1", "host to listen on (0.0.0.0 inside a container)")
	adv := flag.String("advertise", "", "host advertised in metadata (default: -bind, or 127.0.0.1 for 0.0.0.0)")
	asVersion := flag.String("as-version", "", "cap API versions at this Kafka release (e.g. 2.8, 3.5)")
	partitions := flag.Int("partitions", 1, "default partitions of auto-created and seed topics")
	seed := flag.String("seed-topics", "", "comma-separated topics to create at start (NAME or NAME:PARTITIONS)")
	dataDir := flag.String("data-dir", "", "persist state here (survives restarts); empty = memory only")
	syncWrites := flag.Bool("sync", false, "fsync every write (with -data-dir)")
	clusterID := flag.String("cluster-id", "", "cluster id (default: kfake's)")
	control := flag.String("control", "", "HOST:PORT for the fault-injection HTTP API (empty = none)")
	logLevel := flag.String("log-level", "warn", "none, error, warn, info or debug")
	bcfgs := make(kv)
	flag.Var(bcfgs, "c", "broker config KEY=VALUE (repeatable)")
	flag.Parse()

	advertise := *adv
	if advertise == "" {
		advertise = *bind
		if advertise == "0.0.0.0" || advertise == "::" {
			advertise = "127.0.0.1"
		}
	}
	levels := map[string]kfake.LogLevel{"none": kfake.LogLevelNone, "error": kfake.LogLevelError,
		"warn": kfake.LogLevelWarn, "info": kfake.LogLevelInfo, "debug": kfake.LogLevelDebug}
	level, ok := levels[strings.ToLower(*logLevel)]
	if !ok {
		fail("-log-level: expected none, error, warn, info or debug, got %q", *logLevel)
	}
	opts := []kfake.Opt{
		kfake.Ports(parsePorts(*ports)...),
		kfake.DefaultNumPartitions(*partitions),
		kfake.AllowAutoTopicCreation(),
		kfake.WithLogger(kfake.BasicLogger(os.Stderr, level)),
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			_, port, _ := net.SplitHostPort(address)
			ln, err := net.Listen(network, net.JoinHostPort(*bind, port))
			if err != nil {
				return nil, err
			}
			return advertised{ln, advertise}, nil
		}),
	}
	if *seed != "" {
		for _, t := range strings.Split(*seed, ",") {
			name, n, has := strings.Cut(strings.TrimSpace(t), ":")
			parts := -1
			if has {
				v, err := strconv.Atoi(n)
				if err != nil || v < 1 {
					fail("-seed-topics: expected NAME or NAME:PARTITIONS (PARTITIONS >= 1), got %q", t)
				}
				parts = v
			}
			opts = append(opts, kfake.SeedTopics(int32(parts), name))
		}
	}
	if *asVersion != "" {
		v := kversion.FromString(*asVersion)
		if v == nil {
			fail("-as-version: unknown Kafka version %q; known: %s", *asVersion,
				strings.Join(kversion.VersionStrings(), ", "))
		}
		opts = append(opts, kfake.MaxVersions(v))
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
		if *syncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
	}
	if *clusterID != "" {
		opts = append(opts, kfake.ClusterID(*clusterID))
	}
	if len(bcfgs) > 0 {
		opts = append(opts, kfake.BrokerConfigs(bcfgs))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		fail("starting the cluster: %v", err)
	}
	if *control != "" {
		serveControl(c, *control)
	}
	for _, a := range c.ListenAddrs() {
		fmt.Println("listening", a)
	}
	fmt.Println("ready")

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	<-sigs
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	select {
	case <-done:
	case <-sigs:
		os.Exit(1)
	}
}

func serveControl(c *kfake.Cluster, address string) {
	ln, err := net.Listen("tcp", address)
	if err != nil {
		fail("-control %s: %v", address, err)
	}
	mux := http.NewServeMux()
	intArg := func(r *http.Request, name string) (int, error) {
		return strconv.Atoi(r.URL.Query().Get(name))
	}
	mux.HandleFunc("POST /remove", func(w http.ResponseWriter, r *http.Request) {
		node, err := intArg(r, "node")
		if err == nil {
			err = c.RemoveNode(int32(node))
		}
		reply(w, err)
	})
	mux.HandleFunc("POST /add", func(w http.ResponseWriter, r *http.Request) {
		node, err := intArg(r, "node")
		port, err2 := intArg(r, "port")
		if err == nil && err2 == nil {
			_, _, err = c.AddNode(int32(node), port)
		} else if err == nil {
			err = err2
		}
		reply(w, err)
	})
	mux.HandleFunc("POST /shuffle-leaders", func(w http.ResponseWriter, _ *http.Request) {
		c.ShufflePartitionLeaders()
		reply(w, nil)
	})
	go func() { _ = http.Serve(ln, mux) }()
}

func reply(w http.ResponseWriter, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintln(w, "ok")
}
