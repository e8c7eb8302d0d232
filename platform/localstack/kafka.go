package localstack

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"

	pkafka "github.com/flashsale/flashsale/platform/kafka"
)

func (s *Stack) startKafka(_ context.Context, topics []string, partitions int) error {
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DefaultNumPartitions(partitions)}
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
