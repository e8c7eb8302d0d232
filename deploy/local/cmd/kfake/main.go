// Command kfake runs a Kafka-protocol cluster (franz-go's kfake) with one
// broker on each address of -brokers until SIGTERM or SIGINT: the split
// platform (deploy/local/split) runs it as a process of its own in place
// of compose's three Kafka brokers, on their three addresses, so topics
// take the three copies compose's order service asks for.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "comma-separated host:port, one broker each")
	partitions := flag.Int("partitions", 1, "partitions of a topic created without a count (KAFKA_NUM_PARTITIONS)")
	flag.Parse()
	if err := run(strings.Split(*brokers, ","), *partitions); err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		os.Exit(1)
	}
}

func run(addrs []string, partitions int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// kfake asks for one listener per broker, in order; each broker
	// listens on (and advertises) its own address.
	next := 0
	listen := func(network, _ string) (net.Listener, error) {
		if next >= len(addrs) {
			return nil, fmt.Errorf("broker %d has no address", next)
		}
		next++
		return net.Listen(network, addrs[next-1])
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(len(addrs)), kfake.ListenFn(listen), kfake.DefaultNumPartitions(partitions))
	if err != nil {
		return err
	}
	defer c.Close()
	slog.New(slog.NewTextHandler(os.Stderr, nil)).Info("kafka brokers serving", "addrs", strings.Join(c.ListenAddrs(), ","))
	<-ctx.Done()
	return nil
}
