// kbench-kfake: franz-go's in-memory Kafka cluster (kfake) as a process, for kbench's Docker runtime.
//
// It listens on -listen (0.0.0.0 inside a container) and advertises -advertise (127.0.0.1: the address
// clients on the host reach through host networking or a published port). SIGTERM/SIGINT close the
// cluster and exit 0.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

// advertised wraps a listener so kfake's metadata names the advertised host, not the bind address.
type advertised struct {
	net.Listener
	addr net.Addr
}

func (a advertised) Addr() net.Addr { return a.addr }

func main() {
	ports := flag.String("ports", "9092", "comma-separated client ports, one per broker")
	listen := flag.String("listen", "0.0.0.0", "address to bind")
	advertise := flag.String("advertise", "127.0.0.1", "host to advertise in metadata")
	partitions := flag.Int("partitions", 1, "default number of partitions of auto-created topics")
	dataDir := flag.String("data-dir", "", "persist state to this directory (empty: in memory)")
	flag.Parse()

	var ps []int
	for _, s := range strings.Split(*ports, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || p < 1 || p > 65535 {
			fmt.Fprintf(os.Stderr, "kbench-kfake: bad port %q\n", s)
			os.Exit(2)
		}
		ps = append(ps, p)
	}
	listenFn := func(network, address string) (net.Listener, error) {
		_, port, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen(network, net.JoinHostPort(*listen, port))
		if err != nil {
			return nil, err
		}
		adv, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(*advertise, port))
		if err != nil {
			ln.Close()
			return nil, err
		}
		return advertised{ln, adv}, nil
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(len(ps)), kfake.Ports(ps...), kfake.ListenFn(listenFn),
		kfake.DefaultNumPartitions(*partitions), kfake.AllowAutoTopicCreation(),
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kbench-kfake: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("kbench-kfake: %d broker(s) listening on %s, advertised as %s\n",
		len(ps), *listen, strings.Join(c.ListenAddrs(), ","))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	c.Close()
	fmt.Println("kbench-kfake: closed")
}
