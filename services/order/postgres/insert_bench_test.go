package postgres_test

import (
	"context"
	"testing"

	"github.com/flashsale/flashsale/services/order"
	"github.com/flashsale/flashsale/services/order/postgres"
)

// BenchmarkInsertBatch is the consumer's write: batches of 500 new
// flash-sale orders, each with its line (and, since the outbox, its
// STORED event), in one transaction. It reports the cost per order.
func BenchmarkInsertBatch(b *testing.B) {
	s := postgres.NewStore(MustPool(b))
	ctx := context.Background()
	const size = 500
	activity := nextID.Add(2)
	for b.Loop() {
		b.StopTimer()
		batch := make([]order.Order, size)
		for i := range batch {
			batch[i] = placed(nextID.Add(2), activity, 1).Order(order.StatusPendingPayment)
		}
		b.StartTimer()
		if n, _, err := s.Insert(ctx, batch); err != nil || n != size {
			b.Fatalf("stored %d of %d: %v", n, size, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*size), "µs/order")
}
