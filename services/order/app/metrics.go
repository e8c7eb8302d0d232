package app

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	pkafka "github.com/flashsale/flashsale/platform/kafka"
)

// lagCollector reports, at scrape time, how many messages of topic the
// consumer group has not committed yet: the number to watch when orders
// stay PROCESSING (see docs/operations.md, "a stuck consumer"). Reading
// it costs three small broker requests per scrape, and every replica
// reports the same group-wide figure.
type lagCollector struct {
	brokers      []string
	group, topic string
	desc         *prometheus.Desc
	failures     prometheus.Counter
}

func newLagCollector(brokers []string, group, topic string) *lagCollector {
	return &lagCollector{
		brokers: brokers, group: group, topic: topic,
		desc: prometheus.NewDesc("order_consumer_lag_messages",
			"Messages of the topic the consumer group has not committed yet.", []string{"group", "topic"}, nil),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "order_consumer_lag_errors_total", Help: "Scrapes that could not read the consumer lag from Kafka.",
		}),
	}
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	c.failures.Describe(ch)
}

// Collect leaves the lag out of a scrape when Kafka does not answer in
// time, and counts the failure instead.
func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	lag, err := pkafka.Lag(ctx, c.brokers, c.group, c.topic)
	if err != nil {
		c.failures.Inc()
	} else {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(lag), c.group, c.topic)
	}
	c.failures.Collect(ch)
}
