package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	pkafka "github.com/flashsale/flashsale/platform/kafka"
	"github.com/flashsale/flashsale/platform/shadow"
)

// Over TCP: EnsureTopics with WithShadows makes each topic's twin; a
// marked write lands on the twin with the header, an unmarked one on the
// real topic without it, and each class's consumer, reading its own topic
// in its own group, sees only its class.
func TestMarkedMessagesGoToTheShadowTopic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	brokers := MustCluster(t, 1)
	topic := fmt.Sprintf("orders.placed.%d", time.Now().UnixNano())
	topics := pkafka.WithShadows(topic)
	if !slices.Equal(topics, []string{topic, topic + ".shadow"}) {
		t.Fatalf("WithShadows: %q", topics)
	}
	if err := pkafka.EnsureTopics(ctx, brokers, 2, pkafka.OneBroker, topics...); err != nil {
		t.Fatal(err)
	}
	w := pkafka.NewClassWriter(brokers, topic, pkafka.ByKey)
	defer w.Close()
	marked := shadow.With(ctx)
	for i := range 3 {
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: fmt.Appendf(nil, "real %d", i)}); err != nil {
			t.Fatal(err)
		}
		if err := w.WriteMessages(marked, kafka.Message{Key: []byte("k"), Value: fmt.Appendf(nil, "marked %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, class := range shadow.Contexts(ctx) {
		group := pkafka.Group(class, "writer")
		if want := map[bool]string{false: "writer", true: "writer.shadow"}[shadow.Is(class)]; group != want {
			t.Fatalf("group %q, want %q", group, want)
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, GroupID: group, Topic: shadow.Topic(class, topic),
			StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
		want := map[bool]string{false: "real", true: "marked"}[shadow.Is(class)]
		for range 3 {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(m.Value[:len(want)]); got != want {
				t.Fatalf("the %s consumer read %q", want, m.Value)
			}
			if pkafka.Marked(&m) != shadow.Is(class) || pkafka.CheckClass(class, &m) != nil {
				t.Fatalf("%q: marked %v on %s", m.Value, pkafka.Marked(&m), m.Topic)
			}
			if !errors.Is(pkafka.CheckClass(shadow.Contexts(ctx)[0], &m), pkafka.ErrClassMismatch) && shadow.Is(class) {
				t.Fatalf("a marked message passes the real class's check")
			}
		}
		r.Close()
	}
}
