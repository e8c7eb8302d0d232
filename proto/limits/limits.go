// Package limits holds the bounds that are part of the services'
// contracts: a caller that checks or splits its requests by one of them
// agrees with the server that refuses past it, because both read the one
// number here (the gateway refuses at its edge what the service behind it
// would refuse, with the same message).
package limits

const (
	// MaxQuantity is the most units of one SKU one flash-sale buy or one
	// order line asks for. A flash sale sells few units per buyer; the
	// bound keeps every count far inside what Lua's numbers (doubles)
	// hold exactly.
	MaxQuantity = 1000
	// MaxPerUserLimit bounds an activity's and a coupon's per-user limit.
	MaxPerUserLimit = 1000
	// MaxBatch bounds the items of one batched inventory call
	// (ReserveBatch, ReleaseBatch, MarkOrdered, ClaimDue, AckDue,
	// RequeueDue), so each call stays one modest Redis pipeline; callers
	// split larger batches.
	MaxBatch = 1000
	// MaxStockBuckets bounds the buckets one flash sale's stock is split
	// into over Redis slots (docs/stock-reservation.md).
	MaxStockBuckets = 16
	// MaxTitleRunes bounds a product title in characters (runes), not
	// bytes: a Chinese title of 200 characters is 600 bytes of UTF-8.
	MaxTitleRunes = 200
	// MaxLines bounds the lines of one cart.
	MaxLines = 100
	// MaxPromotionSKUs bounds the SKUs one promotion names.
	MaxPromotionSKUs = 1000
	// MaxTiers bounds the tiers of one spend-and-save promotion.
	MaxTiers = 10
	// MaxPrice bounds a product's price in cents (100 million in the
	// currency's unit): the catalog refuses a dearer product and
	// marketing a dearer unit price, so every cart's sum stays far from
	// overflowing an int64.
	MaxPrice = 10_000_000_000
	// MaxStock bounds an activity's stock: the catalog refuses more, and
	// the inventory service refuses to preheat more.
	MaxStock = 1_000_000_000
)
