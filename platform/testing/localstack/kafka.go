package localstack

import (
	"context"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kfake"

	pkafka "github.com/flashsale/flashsale/platform/kafka"
)

func (s *Stack) startKafka(_ context.Context, topics []string, partitions int) error {
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(partitions)}
	if s.faults != nil {
		// The broker listens where it likes and tells clients the
		// proxy's address instead, so every connection crosses it.
		opts = append(opts, kfake.ListenFn(func(network, address string) (net.Listener, error) {
			l, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			addr, err := s.faults.add(Kafka, l.Addr().String())
			if err != nil {
				l.Close()
				return nil, err
			}
			tcp, err := net.ResolveTCPAddr("tcp", addr)
			if err != nil {
				l.Close()
				return nil, err
			}
			return advertisedListener{Listener: l, addr: tcp}, nil
		}))
	}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(partitions), topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("localstack: kafka broker: %w", err)
	}
	s.kafka = c
	s.KafkaBrokers = c.ListenAddrs()
	s.KafkaDurability = pkafka.OneBroker
	return nil
}
