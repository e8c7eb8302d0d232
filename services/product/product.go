// Package product is the catalog: products with their regular stock, and
// flash-sale activities, each carved out of one product's stock and
// preheated into the inventory service before anyone can buy.
//
// The package holds the types, the rules and the interfaces it needs from
// its adapters (Store for Postgres, Inventory for the inventory service);
// it imports no adapter.
package product

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/flashsale/flashsale/proto/limits"
)

// Domain outcomes. Adapters map them to API error codes in one table.
var (
	// ErrInvalid is a request that breaks a validation rule.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound is an unknown product or activity.
	ErrNotFound = errors.New("not found")
	// ErrInsufficientStock is an activity asking for more units than its
	// product has left.
	ErrInsufficientStock = errors.New("insufficient product stock")
	// ErrSoldOut is a regular order asking for more units of a SKU than
	// its stock holds.
	ErrSoldOut = errors.New("sold out")
	// ErrGivenUp is a reserve of regular stock for an order whose release
	// came first: its caller gave the order up, so nothing is taken.
	ErrGivenUp = errors.New("order given up before its stock was reserved")
	// ErrUnavailable is a dependency (the inventory service) that could
	// not do its part, so nothing was changed.
	ErrUnavailable = errors.New("dependency unavailable")
)

// Limits of the validation rules.
const (
	MaxTitleRunes   = limits.MaxTitleRunes
	MaxPrice        = limits.MaxPrice
	MaxStock        = limits.MaxStock
	MaxPerUserLimit = limits.MaxPerUserLimit
	// MaxStockLines bounds the lines of one stock reservation: a regular
	// order's lines, so a cart's bound.
	MaxStockLines = limits.MaxLines
)

// Product is a sellable SKU with its regular stock.
type Product struct {
	SKUID int64
	Title string
	Price int64 // cents
	Stock int64 // units not allocated to any activity
}

// Activity is a flash sale of Stock units of one product at Price between
// StartsAt (inclusive) and EndsAt (exclusive). Everything but Remaining is
// fixed when the activity is created.
type Activity struct {
	ID           int64
	SKUID        int64
	Title        string // the product's title
	Price        int64  // cents
	Stock        int64  // units allocated to the sale
	Remaining    int64  // units the inventory service still holds
	PerUserLimit int64
	StartsAt     time.Time
	EndsAt       time.Time
	// ChallengeRequired makes the gateway refuse a buy that carries no
	// solved challenge token (docs/protection.md).
	ChallengeRequired bool
	// StockBuckets is how many Redis slots the inventory service splits
	// the sale's stock over at preheat (0 or 1: one); it is not stored.
	StockBuckets int
}

// Status is where an activity stands at a given time.
type Status int

// Activity statuses, in the order an activity usually goes through them.
const (
	StatusUpcoming Status = iota + 1
	StatusActive
	StatusSoldOut
	StatusEnded
)

// String returns the API name of s.
func (s Status) String() string {
	switch s {
	case StatusUpcoming:
		return "UPCOMING"
	case StatusActive:
		return "ACTIVE"
	case StatusSoldOut:
		return "SOLD_OUT"
	case StatusEnded:
		return "ENDED"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Status returns the activity's status at now. The window decides first:
// an activity that has not started is UPCOMING even with no stock left,
// and one that has ended is ENDED whatever remains.
func (a Activity) Status(now time.Time) Status {
	switch {
	case now.Before(a.StartsAt):
		return StatusUpcoming
	case !now.Before(a.EndsAt):
		return StatusEnded
	case a.Remaining <= 0:
		return StatusSoldOut
	default:
		return StatusActive
	}
}

// Validate checks a product about to be created.
func (p Product) Validate() error {
	switch n := utf8.RuneCountInString(p.Title); {
	case !utf8.ValidString(p.Title):
		return fmt.Errorf("%w: title is not valid UTF-8", ErrInvalid)
	case strings.ContainsFunc(p.Title, unicode.IsControl):
		// NUL, which Postgres cannot store in text, and the other control
		// characters, which no title needs.
		return fmt.Errorf("%w: title has a control character", ErrInvalid)
	case strings.TrimSpace(p.Title) == "":
		return fmt.Errorf("%w: title is required", ErrInvalid)
	case n > MaxTitleRunes:
		return fmt.Errorf("%w: title has %d characters, at most %d allowed", ErrInvalid, n, MaxTitleRunes)
	}
	if p.Price < 1 || p.Price > MaxPrice {
		return fmt.Errorf("%w: price %d cents out of range 1..%d", ErrInvalid, p.Price, int64(MaxPrice))
	}
	if p.Stock < 0 || p.Stock > MaxStock {
		return fmt.Errorf("%w: stock %d out of range 0..%d", ErrInvalid, p.Stock, MaxStock)
	}
	return nil
}

// Validate checks an activity about to be created from product p at now.
// Whether p still has a.Stock units is the store's decision, taken
// atomically with the deduction.
func (a Activity) Validate(p Product, now time.Time) error {
	if a.Price < 1 || a.Price > p.Price {
		return fmt.Errorf("%w: price %d cents out of range 1..%d (the product's price)", ErrInvalid, a.Price, p.Price)
	}
	if a.Stock < 1 || a.Stock > MaxStock {
		return fmt.Errorf("%w: stock %d out of range 1..%d", ErrInvalid, a.Stock, MaxStock)
	}
	if a.PerUserLimit < 1 || a.PerUserLimit > MaxPerUserLimit {
		return fmt.Errorf("%w: per_user_limit %d out of range 1..%d", ErrInvalid, a.PerUserLimit, MaxPerUserLimit)
	}
	if a.StockBuckets < 0 || a.StockBuckets > limits.MaxStockBuckets {
		return fmt.Errorf("%w: stock_buckets %d out of range 0..%d", ErrInvalid, a.StockBuckets, limits.MaxStockBuckets)
	}
	if a.StartsAt.IsZero() || a.EndsAt.IsZero() {
		return fmt.Errorf("%w: starts_at and ends_at are required", ErrInvalid)
	}
	if !a.StartsAt.Before(a.EndsAt) {
		return fmt.Errorf("%w: starts_at %s is not before ends_at %s", ErrInvalid, a.StartsAt.Format(time.RFC3339), a.EndsAt.Format(time.RFC3339))
	}
	if !a.EndsAt.After(now) {
		return fmt.Errorf("%w: ends_at %s is not in the future", ErrInvalid, a.EndsAt.Format(time.RFC3339))
	}
	return nil
}

// StockLine is a quantity of one SKU's regular stock.
type StockLine struct {
	SKUID    int64
	Quantity int64
}

// HeldStock is an order that holds regular stock: reserved and not
// released. ReservedAt is the database's time of the reservation.
type HeldStock struct {
	OrderID    int64
	ReservedAt time.Time
}

// Bounds of a ListHeldStock page.
const (
	// MinHeldAge is the youngest reservation a page may ask for: younger
	// ones may belong to checkouts still running (the order service
	// bounds a checkout at 30 s).
	MinHeldAge = time.Minute
	// MaxHeldPage is the most orders one page returns.
	MaxHeldPage = 1000
)

// ValidateStockLines checks the lines of a reservation as every service
// checks SKU lines (limits.CheckLines), with quantities up to MaxStock.
func ValidateStockLines(lines []StockLine) error {
	if err := limits.CheckLines(len(lines), MaxStock, func(i int) (int64, int64) { return lines[i].SKUID, lines[i].Quantity }); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}
