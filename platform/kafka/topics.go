package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/flashsale/flashsale/platform/config"
)

// Durability is how many brokers keep each message of a topic, and how
// many of them must have it before a producer waiting for acks=all is
// answered. acks=all alone waits only for the replicas currently in sync;
// min.insync.replicas is what stops that set from shrinking to the
// leader alone while writes are still acknowledged (docs/async-orders.md).
type Durability struct {
	// Replication is the topic's replication factor: the copies of each
	// partition, on that many brokers.
	Replication int
	// MinInsync is the topic's min.insync.replicas: with fewer replicas
	// in sync, the leader refuses acks=all writes (NOT_ENOUGH_REPLICAS)
	// rather than acknowledge a message a single failure could lose.
	MinInsync int
}

// DefaultDurability is the production setting, and the default: three
// copies, two of which hold every acknowledged message, so one broker
// may be lost (or restarted) without losing an order or stopping writes.
// A one-broker Kafka refuses it at start; set OneBroker's values there
// explicitly.
var DefaultDurability = Durability{Replication: 3, MinInsync: 2}

// OneBroker is all a single broker can give: one copy, acknowledged by
// that broker alone. The local stack (one in-process broker) runs with
// it; losing that broker's disk loses the topic.
var OneBroker = Durability{Replication: 1, MinInsync: 1}

// DurabilityFromEnv reads FLASHSALE_KAFKA_REPLICATION and
// FLASHSALE_KAFKA_MIN_INSYNC_REPLICAS (DefaultDurability when unset) and
// records an invalid pair in env.
func DurabilityFromEnv(env *config.Env) Durability {
	d := Durability{
		Replication: int(env.Int("FLASHSALE_KAFKA_REPLICATION", int64(DefaultDurability.Replication))),
		MinInsync:   int(env.Int("FLASHSALE_KAFKA_MIN_INSYNC_REPLICAS", int64(DefaultDurability.MinInsync))),
	}
	env.Check(d.Validate() == nil, "%v", d.Validate())
	return d
}

// maxReplication is the largest replication factor the protocol carries
// (an int16).
const maxReplication = 1<<15 - 1

// Validate reports a pair no broker could honour: fewer than one copy, or
// more copies required in sync than exist, which would refuse every
// acks=all write.
func (d Durability) Validate() error {
	switch {
	case d.Replication < 1 || d.Replication > maxReplication:
		return fmt.Errorf("FLASHSALE_KAFKA_REPLICATION=%d: must be 1..%d", d.Replication, maxReplication)
	case d.MinInsync < 1 || d.MinInsync > d.Replication:
		return fmt.Errorf("FLASHSALE_KAFKA_MIN_INSYNC_REPLICAS=%d: must be 1..FLASHSALE_KAFKA_REPLICATION (%d): more replicas in sync than copies would refuse every write", d.MinInsync, d.Replication)
	}
	return nil
}

// configMinInsync is the topic configuration min.insync.replicas.
const configMinInsync = "min.insync.replicas"

// EnsureTopics creates the topics that do not exist yet, with partitions
// partitions and durability d, and checks that those that already exist
// are at least as durable: a topic made earlier with the broker's default
// replication, or by hand, would otherwise quietly keep fewer copies than
// the service promises, so it refuses to start instead. Real clusters
// usually disable automatic creation; the partition count is what bounds
// consumer parallelism.
func EnsureTopics(ctx context.Context, brokers []string, partitions int, d Durability, topics ...string) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	req := &kafka.CreateTopicsRequest{}
	for _, t := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{
			Topic: t, NumPartitions: partitions, ReplicationFactor: d.Replication,
			ConfigEntries: []kafka.ConfigEntry{{ConfigName: configMinInsync, ConfigValue: strconv.Itoa(d.MinInsync)}},
		})
	}
	resp, err := c.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("kafka: create topics: %w", err)
	}
	var existing []string
	for _, t := range topics {
		switch err := resp.Errors[t]; {
		case errors.Is(err, kafka.TopicAlreadyExists):
			existing = append(existing, t)
		case errors.Is(err, kafka.InvalidReplicationFactor):
			return fmt.Errorf("kafka: create topic %s with %d replicas: %w (the cluster has fewer brokers; FLASHSALE_KAFKA_REPLICATION)", t, d.Replication, err)
		case err != nil:
			return fmt.Errorf("kafka: create topic %s: %w", t, err)
		}
	}
	if len(existing) == 0 {
		return nil
	}
	got, err := describeDurability(ctx, c, existing)
	if err != nil {
		return err
	}
	for _, t := range existing {
		if g := got[t]; g.Replication < d.Replication || g.MinInsync < d.MinInsync {
			return fmt.Errorf("kafka: topic %s exists with replication factor %d and %s=%d, weaker than the %d and %d asked for "+
				"(FLASHSALE_KAFKA_REPLICATION, FLASHSALE_KAFKA_MIN_INSYNC_REPLICAS): raise them on the cluster "+
				"(kafka-configs.sh --alter, kafka-reassign-partitions.sh), or lower the settings knowingly",
				t, g.Replication, configMinInsync, g.MinInsync, d.Replication, d.MinInsync)
		}
	}
	return nil
}

// describeDurability reads what topics actually have: the fewest replicas
// of any partition, and the effective min.insync.replicas (the topic's
// own or the broker's default).
func describeDurability(ctx context.Context, c *kafka.Client, topics []string) (map[string]Durability, error) {
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("kafka: metadata: %w", err)
	}
	out := map[string]Durability{}
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("kafka: metadata of %s: %w", t.Name, t.Error)
		}
		d := Durability{Replication: maxReplication}
		for _, p := range t.Partitions {
			d.Replication = min(d.Replication, len(p.Replicas))
		}
		if len(t.Partitions) == 0 {
			d.Replication = 0
		}
		out[t.Name] = d
	}
	req := &kafka.DescribeConfigsRequest{}
	for _, t := range topics {
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: t, ConfigNames: []string{configMinInsync},
		})
	}
	cfgs, err := c.DescribeConfigs(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("kafka: describe configs: %w", err)
	}
	for _, r := range cfgs.Resources {
		if r.Error != nil {
			return nil, fmt.Errorf("kafka: configs of %s: %w", r.ResourceName, r.Error)
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName != configMinInsync {
				continue
			}
			n, err := strconv.Atoi(e.ConfigValue)
			if err != nil {
				return nil, fmt.Errorf("kafka: %s of %s is %q", configMinInsync, r.ResourceName, e.ConfigValue)
			}
			d := out[r.ResourceName]
			d.MinInsync = n
			out[r.ResourceName] = d
		}
	}
	for _, t := range topics {
		if _, ok := out[t]; !ok {
			return nil, fmt.Errorf("kafka: metadata lists no topic %s", t)
		}
	}
	return out, nil
}
