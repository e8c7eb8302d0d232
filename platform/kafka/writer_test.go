package kafka_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	pkafka "github.com/flashsale/flashsale/platform/kafka"
)

// Over TCP, on a topic of four partitions: messages written at once with
// twelve keys go to several partitions by key when the writer keeps a
// key's order (ByKey), and to one partition, in one produce request, when
// the topic needs no order (Unordered); either way each message is there
// once.
func TestUnorderedWriterSendsMessagesWrittenAtOnceToOnePartition(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	brokers := MustCluster(t, 1)
	for _, tc := range []struct {
		order pkafka.Order
		name  string
	}{{pkafka.ByKey, "by-key"}, {pkafka.Unordered, "unordered"}} {
		topic := fmt.Sprintf("writer.%s.%d", tc.name, time.Now().UnixNano())
		if err := pkafka.EnsureTopics(ctx, brokers, 4, pkafka.OneBroker, topic); err != nil {
			t.Fatal(err)
		}
		w := pkafka.NewWriter(brokers, topic, tc.order)
		msgs := make([]kafka.Message, 12)
		for i := range msgs {
			msgs[i] = kafka.Message{Key: []byte(strconv.Itoa(1000 + i)), Value: []byte(strconv.Itoa(i))}
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		unordered := tc.order == pkafka.Unordered
		if writes := w.Stats().Writes; (writes == 1) != unordered {
			t.Errorf("%s: %d produce requests, want one unordered and several by key", tc.name, writes)
		}
		w.Close()
		seen, partitions := map[string]int{}, map[int]bool{}
		for p := range 4 {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
			last, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, p)
			if err != nil {
				t.Fatal(err)
			}
			end, err := last.ReadLastOffset()
			last.Close()
			if err != nil {
				t.Fatal(err)
			}
			for range end {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				seen[string(m.Value)]++
				partitions[p] = true
			}
			r.Close()
		}
		if len(seen) != len(msgs) {
			t.Fatalf("%s: read %d distinct messages, want %d", tc.name, len(seen), len(msgs))
		}
		for v, n := range seen {
			if n != 1 {
				t.Fatalf("%s: message %s read %d times", tc.name, v, n)
			}
		}
		if (len(partitions) == 1) != unordered {
			t.Errorf("%s: messages in %d partitions, want one unordered and several by key", tc.name, len(partitions))
		}
	}
}
