package kafka_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/flashsale/flashsale/platform/config"
	pkafka "github.com/flashsale/flashsale/platform/kafka"
)

// MustCluster starts an in-process Kafka-protocol cluster of brokers
// brokers, reached over TCP like a real one.
func MustCluster(tb testing.TB, brokers int, opts ...kfake.Opt) []string {
	tb.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(brokers)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c.ListenAddrs()
}

// topicState is what the cluster reports about a topic: each partition's
// replica count, and min.insync.replicas with whether the topic itself
// sets it (rather than inheriting the broker's default).
type topicState struct {
	replicas  []int
	minInsync string
	topicSets bool
}

func mustDescribe(tb testing.TB, brokers []string, topic string) topicState {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(brokers...)}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 || md.Topics[0].Error != nil {
		tb.Fatalf("metadata of %s: %v %+v", topic, err, md)
	}
	var st topicState
	for _, p := range md.Topics[0].Partitions {
		st.replicas = append(st.replicas, len(p.Replicas))
	}
	cfg, err := c.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"min.insync.replicas"},
	}}})
	if err != nil || len(cfg.Resources) != 1 || cfg.Resources[0].Error != nil {
		tb.Fatalf("configs of %s: %v %+v", topic, err, cfg)
	}
	for _, e := range cfg.Resources[0].ConfigEntries {
		if e.ConfigName == "min.insync.replicas" {
			// Source 1 is DYNAMIC_TOPIC_CONFIG: set on the topic.
			st.minInsync, st.topicSets = e.ConfigValue, e.ConfigSource == 1
		}
	}
	return st
}

// Topics are created with the replication factor and min.insync.replicas
// asked for, not the broker's defaults, on every partition.
func TestEnsureTopicsCreatesThemAsDurableAsAsked(t *testing.T) {
	tests := []struct {
		name          string
		brokers       int
		d             pkafka.Durability
		wantMinInsync string
	}{
		{"production: three copies, two in sync", 3, pkafka.DefaultDurability, "2"},
		{"two copies on three brokers", 3, pkafka.Durability{Replication: 2, MinInsync: 2}, "2"},
		{"one broker", 1, pkafka.OneBroker, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			brokers := MustCluster(t, tt.brokers)
			if err := pkafka.EnsureTopics(context.Background(), brokers, 4, tt.d, "orders.placed", "orders.placed.dlq"); err != nil {
				t.Fatal(err)
			}
			for _, topic := range []string{"orders.placed", "orders.placed.dlq"} {
				got := mustDescribe(t, brokers, topic)
				if len(got.replicas) != 4 {
					t.Errorf("%s: %d partitions, want 4", topic, len(got.replicas))
				}
				for i, n := range got.replicas {
					if n != tt.d.Replication {
						t.Errorf("%s/%d: %d replicas, want %d", topic, i, n, tt.d.Replication)
					}
				}
				if got.minInsync != tt.wantMinInsync || !got.topicSets {
					t.Errorf("%s: min.insync.replicas %q (set on the topic: %v), want %q set on the topic", topic, got.minInsync, got.topicSets, tt.wantMinInsync)
				}
			}
			// A second start finds them as durable as asked.
			if err := pkafka.EnsureTopics(context.Background(), brokers, 4, tt.d, "orders.placed", "orders.placed.dlq"); err != nil {
				t.Fatalf("again: %v", err)
			}
		})
	}
}

// A cluster without enough brokers for the replication factor refuses the
// topic, and the error says which setting asked for it.
func TestEnsureTopicsRefusesMoreReplicasThanBrokers(t *testing.T) {
	brokers := MustCluster(t, 1)
	err := pkafka.EnsureTopics(context.Background(), brokers, 4, pkafka.DefaultDurability, "orders.placed")
	if !errors.Is(err, kafka.InvalidReplicationFactor) || !strings.Contains(err.Error(), "FLASHSALE_KAFKA_REPLICATION") {
		t.Fatalf("got %v, want INVALID_REPLICATION_FACTOR naming FLASHSALE_KAFKA_REPLICATION", err)
	}
}

// A topic that already exists must be at least as durable as asked for,
// or the service refuses to start on it.
func TestEnsureTopicsChecksExistingTopics(t *testing.T) {
	tests := []struct {
		name    string
		brokers int
		// made creates the topic before the service starts.
		made    func(brokers []string) error
		want    pkafka.Durability
		wantErr bool
	}{
		{"made with one copy", 3, ensure(pkafka.OneBroker), pkafka.DefaultDurability, true},
		{"made with three copies but one in sync", 3, ensure(pkafka.Durability{Replication: 3, MinInsync: 1}), pkafka.DefaultDurability, true},
		{"made with two copies", 3, ensure(pkafka.Durability{Replication: 2, MinInsync: 2}), pkafka.DefaultDurability, true},
		{"made as asked", 3, ensure(pkafka.DefaultDurability), pkafka.DefaultDurability, false},
		{"made stronger than asked", 3, ensure(pkafka.Durability{Replication: 3, MinInsync: 3}), pkafka.DefaultDurability, false},
		{"made by the broker's defaults, asked for one copy", 1, nil, pkafka.OneBroker, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []kfake.Opt
			if tt.made == nil {
				opts = append(opts, kfake.SeedTopics(4, "orders.placed"))
			}
			brokers := MustCluster(t, tt.brokers, opts...)
			if tt.made != nil {
				if err := tt.made(brokers); err != nil {
					t.Fatal(err)
				}
			}
			err := pkafka.EnsureTopics(context.Background(), brokers, 4, tt.want, "orders.placed")
			if got := err != nil; got != tt.wantErr {
				t.Fatalf("error: got %v, want an error %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "orders.placed exists") {
				t.Fatalf("error %q does not name the topic", err)
			}
		})
	}
}

func ensure(d pkafka.Durability) func([]string) error {
	return func(brokers []string) error {
		return pkafka.EnsureTopics(context.Background(), brokers, 4, d, "orders.placed")
	}
}

func TestDurabilityFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    pkafka.Durability
		wantErr bool
	}{
		{"defaults", nil, pkafka.Durability{Replication: 3, MinInsync: 2}, false},
		{"one broker", map[string]string{"FLASHSALE_KAFKA_REPLICATION": "1", "FLASHSALE_KAFKA_MIN_INSYNC_REPLICAS": "1"}, pkafka.OneBroker, false},
		{"five copies, three in sync", map[string]string{"FLASHSALE_KAFKA_REPLICATION": "5", "FLASHSALE_KAFKA_MIN_INSYNC_REPLICAS": "3"}, pkafka.Durability{Replication: 5, MinInsync: 3}, false},
		{"all in sync", map[string]string{"FLASHSALE_KAFKA_MIN_INSYNC_REPLICAS": "3"}, pkafka.Durability{Replication: 3, MinInsync: 3}, false},
		{"more in sync than copies", map[string]string{"FLASHSALE_KAFKA_REPLICATION": "1"}, pkafka.Durability{}, true},
		{"no copy", map[string]string{"FLASHSALE_KAFKA_REPLICATION": "0", "FLASHSALE_KAFKA_MIN_INSYNC_REPLICAS": "0"}, pkafka.Durability{}, true},
		{"none in sync", map[string]string{"FLASHSALE_KAFKA_MIN_INSYNC_REPLICAS": "0"}, pkafka.Durability{}, true},
		{"past the protocol's int16", map[string]string{"FLASHSALE_KAFKA_REPLICATION": "40000"}, pkafka.Durability{}, true},
		{"not a number", map[string]string{"FLASHSALE_KAFKA_REPLICATION": "three"}, pkafka.Durability{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := config.FromMap(tt.env)
			got := pkafka.DurabilityFromEnv(env)
			if err := env.Err(); (err != nil) != tt.wantErr {
				t.Fatalf("error: got %v, want an error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// EnsureTopics itself refuses a pair no broker could honour, before
// asking the cluster for anything.
func TestEnsureTopicsValidates(t *testing.T) {
	err := pkafka.EnsureTopics(context.Background(), []string{"127.0.0.1:1"}, 1, pkafka.Durability{Replication: 2, MinInsync: 3}, "t")
	if err == nil || !strings.Contains(err.Error(), "FLASHSALE_KAFKA_MIN_INSYNC_REPLICAS") {
		t.Fatalf("got %v, want the min.insync.replicas setting refused", err)
	}
}
