package postgres_test

import (
	"cmp"
	"context"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/flashsale/flashsale/platform/clock"
	"github.com/flashsale/flashsale/platform/ids"
	"github.com/flashsale/flashsale/platform/sweep"
	"github.com/flashsale/flashsale/platform/testing/localstack"
	"github.com/flashsale/flashsale/platform/testing/pgcalls"
	"github.com/flashsale/flashsale/services/marketing"
	"github.com/flashsale/flashsale/services/marketing/postgres"
)

var stack *localstack.Stack

func TestMain(m *testing.M) {
	localstack.RunTests(m, localstack.Config{Databases: []string{"marketing", "marketing_plans"}}, func(s *localstack.Stack) { stack = s })
}

// gen hands out ids distinct across the tests of this package.
var gen, _ = ids.NewGenerator(ids.SpaceMarketing, 1, clock.Real{})

var now = time.Now().UTC().Truncate(time.Microsecond)

// MustPool returns a pool on the migrated test database.
func MustPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return stack.MustPool(tb, "marketing", 40, postgres.Migrations)
}

// MustStore returns a store on the migrated test database.
func MustStore(tb testing.TB) *postgres.Store {
	tb.Helper()
	return postgres.New(MustPool(tb))
}

// MustTemplate creates a template of total coupons, perUser per user,
// valid for the hour around now.
func MustTemplate(tb testing.TB, s *postgres.Store, total, perUser int64) marketing.CouponTemplate {
	tb.Helper()
	t := marketing.CouponTemplate{ID: gen.Next(), Threshold: 99_00, Amount: 10_00, Total: total, PerUserLimit: perUser,
		ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour)}
	if err := s.CreateCouponTemplate(context.Background(), t); err != nil {
		tb.Fatal(err)
	}
	return t
}

// newKey is an idempotency key no other claim has.
func newKey() string { return "claim-" + strconv.FormatInt(gen.Next(), 10) }

// MustClaim claims a coupon of the template for the user.
func MustClaim(tb testing.TB, s *postgres.Store, templateID, userID int64) marketing.Coupon {
	tb.Helper()
	c, err := s.ClaimCoupon(context.Background(), templateID, userID, gen.Next(), newKey(), now)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestConcurrentClaimsNeverExceedIssue(t *testing.T) {
	s := MustStore(t)
	ctx := context.Background()
	const total, perUser, users, attemptsPerUser = 50, 3, 40, 5
	tmpl := MustTemplate(t, s, total, perUser)

	var mu sync.Mutex
	claimed := map[int64]int{}
	var wg sync.WaitGroup
	for range users {
		user := gen.Next() // buyers of its own, so repeated runs on one database do not count each other's coupons
		for range attemptsPerUser {
			wg.Go(func() {
				_, err := s.ClaimCoupon(ctx, tmpl.ID, user, gen.Next(), newKey(), now)
				switch {
				case err == nil:
					mu.Lock()
					claimed[user]++
					mu.Unlock()
				case errors.Is(err, marketing.ErrCouponsExhausted), errors.Is(err, marketing.ErrClaimLimit):
				default:
					t.Errorf("claim: %v", err)
				}
			})
		}
	}
	wg.Wait()
	var got int
	for user, n := range claimed {
		if n > perUser {
			t.Errorf("user %d claimed %d coupons, the limit is %d", user, n, perUser)
		}
		got += n
		list, err := s.UserCoupons(ctx, user, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != n {
			t.Errorf("user %d holds %d coupons, claimed %d", user, len(list), n)
		}
	}
	// 40 users × 3 allowed = 120 wanted, so every coupon must go.
	if got != total {
		t.Fatalf("%d coupons claimed, want exactly the %d issued", got, total)
	}
	if _, err := s.ClaimCoupon(ctx, tmpl.ID, 1, gen.Next(), newKey(), now); !errors.Is(err, marketing.ErrCouponsExhausted) {
		t.Fatalf("claim after the last = %v, want ErrCouponsExhausted", err)
	}
}

func TestConcurrentClaimsOfOneUserStopAtTheLimit(t *testing.T) {
	s := MustStore(t)
	const perUser = 2
	tmpl := MustTemplate(t, s, 1000, perUser)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, limited int
	for range 30 {
		wg.Go(func() {
			_, err := s.ClaimCoupon(context.Background(), tmpl.ID, 7, gen.Next(), newKey(), now)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, marketing.ErrClaimLimit):
				limited++
			default:
				t.Errorf("claim: %v", err)
			}
		})
	}
	wg.Wait()
	if ok != perUser || limited != 30-perUser {
		t.Fatalf("%d claims succeeded and %d hit the limit, want %d and %d", ok, limited, perUser, 30-perUser)
	}
	// The refused claims were rolled back: the template counts two.
	MustClaim(t, s, tmpl.ID, 8)
}

func TestClaimRefusals(t *testing.T) {
	s := MustStore(t)
	ctx := context.Background()
	later := marketing.CouponTemplate{ID: gen.Next(), Amount: 1, Total: 1, PerUserLimit: 1, ValidFrom: now.Add(time.Hour), ValidUntil: now.Add(2 * time.Hour)}
	if err := s.CreateCouponTemplate(ctx, later); err != nil {
		t.Fatal(err)
	}
	one := MustTemplate(t, s, 1, 1)
	MustClaim(t, s, one.ID, 1)
	tests := []struct {
		name       string
		templateID int64
		at         time.Time
		want       error
	}{
		{"unknown template", gen.Next(), now, marketing.ErrNotFound},
		{"before the window", later.ID, now, marketing.ErrNotClaimable},
		{"at the window's end", later.ID, later.ValidUntil, marketing.ErrNotClaimable},
		{"none left", one.ID, now, marketing.ErrCouponsExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.ClaimCoupon(ctx, tt.templateID, 2, gen.Next(), newKey(), tt.at); !errors.Is(err, tt.want) {
				t.Fatalf("claim = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestConsumeAndRelease(t *testing.T) {
	s := MustStore(t)
	ctx := context.Background()
	tmpl := MustTemplate(t, s, 10, 5)
	const user = 42
	c := MustClaim(t, s, tmpl.ID, user)
	other := MustClaim(t, s, tmpl.ID, user)
	order, secondOrder := gen.Next(), gen.Next()

	used, err := s.ConsumeCoupon(ctx, user, c.ID, order, now)
	if err != nil {
		t.Fatal(err)
	}
	if used.Status != marketing.CouponUsed || used.OrderID != order {
		t.Fatalf("consumed coupon = %+v, want USED by order %d", used, order)
	}
	again, err := s.ConsumeCoupon(ctx, user, c.ID, order, now)
	if err != nil || !reflect.DeepEqual(again, used) {
		t.Fatalf("consuming again for the same order = %+v, %v; want %+v, nil", again, err, used)
	}
	refusals := []struct {
		name                string
		user, coupon, order int64
		at                  time.Time
		want                error
	}{
		{"another order", user, c.ID, secondOrder, now, marketing.ErrCouponUsed},
		{"a second coupon for the order", user, other.ID, order, now, marketing.ErrCouponUsed},
		{"someone else's coupon", user + 1, other.ID, secondOrder, now, marketing.ErrNotFound},
		{"past its window", user, other.ID, secondOrder, tmpl.ValidUntil, marketing.ErrCouponNotApplicable},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.ConsumeCoupon(ctx, tt.user, tt.coupon, tt.order, tt.at); !errors.Is(err, tt.want) {
				t.Fatalf("consume = %v, want %v", err, tt.want)
			}
		})
	}

	id, err := s.ReleaseCoupon(ctx, order)
	if err != nil || id != c.ID {
		t.Fatalf("release = %d, %v; want %d", id, err, c.ID)
	}
	if id, err := s.ReleaseCoupon(ctx, order); err != nil || id != 0 {
		t.Fatalf("second release = %d, %v; want 0, nil", id, err)
	}
	back, err := s.Coupon(ctx, user, c.ID)
	if err != nil || back.Status != marketing.CouponAvailable || back.OrderID != 0 {
		t.Fatalf("released coupon = %+v, %v; want AVAILABLE without order", back, err)
	}
	if _, err := s.ConsumeCoupon(ctx, user, c.ID, secondOrder, now); err != nil {
		t.Fatalf("a released coupon serves another order: %v", err)
	}
}

// A release that finds no coupon for its order leaves a tombstone: the
// order's use of a coupon, arriving after it (the caller gave the order up
// after an ambiguous use that was still running), is refused and the
// coupon stays the buyer's. Raced both ways round, every coupon ends
// AVAILABLE.
func TestReleaseBeforeUseKeepsTheCoupon(t *testing.T) {
	s := MustStore(t)
	ctx := context.Background()
	tmpl := MustTemplate(t, s, 50, 50)
	user := gen.Next()
	c := MustClaim(t, s, tmpl.ID, user)
	late := gen.Next()
	if id, err := s.ReleaseCoupon(ctx, late); err != nil || id != 0 {
		t.Fatalf("release of an order holding no coupon = %d, %v; want 0, nil", id, err)
	}
	if _, err := s.ConsumeCoupon(ctx, user, c.ID, late, now); !errors.Is(err, marketing.ErrGivenUp) {
		t.Fatalf("use after its order's release = %v, want ErrGivenUp", err)
	}
	var wg sync.WaitGroup
	var coupons []int64
	for range 20 {
		c := MustClaim(t, s, tmpl.ID, user)
		coupons = append(coupons, c.ID)
		order := gen.Next()
		wg.Go(func() {
			if _, err := s.ConsumeCoupon(ctx, user, c.ID, order, now); err != nil && !errors.Is(err, marketing.ErrGivenUp) {
				t.Errorf("use: %v", err)
			}
		})
		wg.Go(func() {
			if _, err := s.ReleaseCoupon(ctx, order); err != nil {
				t.Errorf("release: %v", err)
			}
		})
	}
	wg.Wait()
	for _, id := range append(coupons, c.ID) {
		if got, err := s.Coupon(ctx, user, id); err != nil || got.Status != marketing.CouponAvailable {
			t.Errorf("coupon %d = %+v, %v; want AVAILABLE: its order was given up", id, got, err)
		}
	}
}

func TestConcurrentConsumptionHasOneWinner(t *testing.T) {
	s := MustStore(t)
	tmpl := MustTemplate(t, s, 1, 1)
	c := MustClaim(t, s, tmpl.ID, 9)
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := 0
	for range 20 {
		wg.Go(func() {
			_, err := s.ConsumeCoupon(context.Background(), 9, c.ID, gen.Next(), now)
			if err != nil && !errors.Is(err, marketing.ErrCouponUsed) {
				t.Errorf("consume: %v", err)
			}
			if err == nil {
				mu.Lock()
				winners++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if winners != 1 {
		t.Fatalf("%d orders consumed one coupon, want 1", winners)
	}
}

func TestLivePromotions(t *testing.T) {
	s := MustStore(t)
	ctx := context.Background()
	at := MustEpoch()
	sku := gen.Next()
	live := func(p marketing.Promotion) marketing.Promotion {
		p.ID, p.StartsAt, p.EndsAt = gen.Next(), at.Add(-time.Hour), at.Add(time.Hour)
		return p
	}
	everySKU := live(marketing.Promotion{Kind: marketing.KindFullReduction,
		Tiers: []marketing.Tier{{Threshold: 99_00, Off: 9_00}, {Threshold: 199_00, Off: 30_00}}})
	discount := live(marketing.Promotion{Kind: marketing.KindSKUDiscount, SKUIDs: []int64{sku, sku + 1}, RateBP: 9000})
	// Named twice, indexed once: a promotion is found once per quote.
	twice := live(marketing.Promotion{Kind: marketing.KindSKUDiscount, SKUIDs: []int64{sku + 1, sku + 1}, RateBP: 8000})
	someSKUs := live(marketing.Promotion{Kind: marketing.KindFullReduction, SKUIDs: []int64{sku + 2},
		Tiers: []marketing.Tier{{Threshold: 10_00, Off: 1_00}}})
	ended := live(marketing.Promotion{Kind: marketing.KindSKUDiscount, SKUIDs: []int64{sku}, RateBP: 5000})
	ended.StartsAt, ended.EndsAt = at.Add(-2*time.Hour), at
	endedEverySKU := live(everySKU)
	endedEverySKU.StartsAt, endedEverySKU.EndsAt = at.Add(-2*time.Hour), at
	notYet := live(marketing.Promotion{Kind: marketing.KindSKUDiscount, SKUIDs: []int64{sku}, RateBP: 5000})
	notYet.StartsAt = at.Add(time.Microsecond)
	notYetEverySKU := live(everySKU)
	notYetEverySKU.StartsAt = at.Add(time.Microsecond)
	otherSKU := live(marketing.Promotion{Kind: marketing.KindSKUDiscount, SKUIDs: []int64{sku + 3}, RateBP: 5000})
	for _, p := range []marketing.Promotion{everySKU, discount, twice, someSKUs, ended, endedEverySKU, notYet, notYetEverySKU, otherSKU} {
		if err := s.CreatePromotion(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		skus []int64
		want []marketing.Promotion
	}{
		{"one SKU", []int64{sku}, []marketing.Promotion{everySKU, discount}},
		{"a SKU named twice", []int64{sku + 1}, []marketing.Promotion{everySKU, discount, twice}},
		{"two SKUs of one promotion", []int64{sku, sku + 1, sku + 2}, []marketing.Promotion{everySKU, discount, twice, someSKUs}},
		{"a SKU without promotions", []int64{sku + 4}, []marketing.Promotion{everySKU}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.LivePromotions(ctx, tt.skus, at)
			if err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(got, func(a, b marketing.Promotion) int { return cmp.Compare(a.ID, b.ID) })
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("live promotions of %v:\n got %+v\nwant %+v", tt.skus, got, tt.want)
			}
		})
	}
}

// TestClaimKeyNamesOneCoupon repeats claims under one key: a repeat takes
// nothing and returns the first coupon, also once the template is
// exhausted and the user at the limit; a new key is a new claim; copies
// sent at once take one coupon.
func TestClaimKeyNamesOneCoupon(t *testing.T) {
	s := MustStore(t)
	ctx := context.Background()
	tmpl := MustTemplate(t, s, 3, 2)
	user := gen.Next() // a buyer of its own: the count below is the buyer's
	claim := func(key string) (marketing.Coupon, error) {
		return s.ClaimCoupon(ctx, tmpl.ID, user, gen.Next(), key, now)
	}
	first, err := claim("tap")
	if err != nil {
		t.Fatal(err)
	}
	// Ten copies of a second claim at once.
	answers := make([]marketing.Coupon, 10)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			c, err := claim("tap-2")
			if err != nil {
				t.Errorf("copy %d: %v", i, err)
			}
			answers[i] = c
		})
	}
	wg.Wait()
	for i, c := range answers {
		if c.ID != answers[0].ID || c.ID == first.ID {
			t.Errorf("copy %d answered coupon %d, copy 0 coupon %d: want one new coupon", i, c.ID, answers[0].ID)
		}
	}
	// The user is at the limit and another user takes the last coupon
	// (the third: the copies took one): the first key still answers its
	// coupon.
	MustClaim(t, s, tmpl.ID, user+1)
	again, err := claim("tap")
	if err != nil || !reflect.DeepEqual(again, first) {
		t.Fatalf("repeat at the limit of an exhausted template = %+v, %v; want %+v", again, err, first)
	}
	if _, err := claim("tap-3"); !errors.Is(err, marketing.ErrCouponsExhausted) {
		t.Errorf("a new key on an exhausted template = %v, want ErrCouponsExhausted", err)
	}
	// The key belongs to the user and the template.
	other := MustTemplate(t, s, 1, 1)
	if c, err := s.ClaimCoupon(ctx, other.ID, user, gen.Next(), "tap", now); err != nil || c.ID == first.ID {
		t.Errorf("the key on another template = %+v, %v; want a coupon of its own", c, err)
	}
	list, err := s.UserCoupons(ctx, user, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Errorf("the user holds %d coupons, want 3 (two of the template, one of the other)", len(list))
	}
}

// A template's row is hot: every claim of the template counts itself on
// it. A claim, granted or refused, is one statement, whose transaction
// begins and ends inside the database: one that went back to the service
// between statements would keep the row locked for that round trip, and
// every other claim of the template waiting behind it. (Answering a
// repeated key reads its coupon afterwards, with no lock held.)
func TestClaimIsOneRoundTrip(t *testing.T) {
	calls := pgcalls.New(MustPool(t))
	s := postgres.New(calls)
	tmpl := MustTemplate(t, s, 2, 1)
	user := gen.Next()
	for _, claim := range []struct {
		name    string
		user    int64
		refusal error
	}{
		{"granted", user, nil},
		{"over the user's limit", user, marketing.ErrClaimLimit},
		{"granted the last", gen.Next(), nil},
		{"exhausted", gen.Next(), marketing.ErrCouponsExhausted},
	} {
		calls.Take()
		if _, err := s.ClaimCoupon(context.Background(), tmpl.ID, claim.user, gen.Next(), newKey(), now); !errors.Is(err, claim.refusal) {
			t.Fatalf("%s: %v, want %v", claim.name, err, claim.refusal)
		}
		if got := calls.Take(); len(got) != 1 || got[0] == "Begin" {
			t.Errorf("%s made %v, want one statement", claim.name, got)
		}
	}
}

// A claim that is refused without counting anything (an exhausted
// template, or one outside its window) is refused without waiting for
// the template's row lock: after a template runs out, every click would
// otherwise queue on its row one at a time. Here a transaction holds
// that lock for the whole test; a claim that waited for it would run out
// of its context.
func TestRefusalsDoNotWaitForTheTemplatesLock(t *testing.T) {
	pool := MustPool(t)
	s := postgres.New(pool)
	exhausted := MustTemplate(t, s, 1, 1)
	MustClaim(t, s, exhausted.ID, gen.Next())
	later := marketing.CouponTemplate{ID: gen.Next(), Threshold: 0, Amount: 1_00, Total: 5, PerUserLimit: 1,
		ValidFrom: now.Add(time.Hour), ValidUntil: now.Add(2 * time.Hour)}
	if err := s.CreateCouponTemplate(context.Background(), later); err != nil {
		t.Fatal(err)
	}
	locker, err := pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Rollback(context.Background())
	if _, err := locker.Exec(context.Background(), `SELECT 1 FROM coupon_templates WHERE template_id = ANY($1) FOR UPDATE`,
		[]int64{exhausted.ID, later.ID}); err != nil {
		t.Fatal(err)
	}
	for _, claim := range []struct {
		name     string
		template int64
		want     error
	}{
		{"exhausted", exhausted.ID, marketing.ErrCouponsExhausted},
		{"not yet claimable", later.ID, marketing.ErrNotClaimable},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := s.ClaimCoupon(ctx, claim.template, gen.Next(), gen.Next(), newKey(), now)
		cancel()
		if !errors.Is(err, claim.want) {
			t.Errorf("%s, its row locked: %v, want %v at once", claim.name, err, claim.want)
		}
	}
}

// ListUsedCoupons pages the orders that hold a coupon used long enough
// ago, by the time of the use (the service's clock) and then by order
// id: a released coupon and a recent use are left out, a window bounds
// the page's start, and a page out of bounds is refused.
func TestUsedCouponsPagesOldHeldCoupons(t *testing.T) {
	s := MustStore(t)
	ctx := context.Background()
	svc := marketing.NewService(marketing.Config{Store: s, IDs: gen, Clock: clock.NewManual(now)})
	tmpl := MustTemplate(t, s, 4, 4)
	user := gen.Next()
	a, b, released, young := gen.Next(), gen.Next(), gen.Next(), gen.Next()
	// a and b are used at one instant of their own (a run again in the
	// same database, -count, must not find the last run's there).
	at := now.Add(-30*time.Minute - time.Duration(gen.Next()%10_000_000)*time.Microsecond)
	for _, use := range []struct {
		order int64
		at    time.Time
	}{{a, at}, {b, at}, {released, now.Add(-25 * time.Minute)}, {young, now.Add(-5 * time.Minute)}} {
		c := MustClaim(t, s, tmpl.ID, user)
		if _, err := s.ConsumeCoupon(ctx, user, c.ID, use.order, use.at); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ReleaseCoupon(ctx, released); err != nil {
		t.Fatal(err)
	}
	mine := map[int64]bool{a: true, b: true, released: true, young: true}
	// page lists the page q asks for, this test's orders only.
	page := func(q sweep.AgedQuery) []int64 {
		t.Helper()
		used, err := svc.ListUsedCoupons(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, u := range used {
			if mine[u.OrderID] {
				ids = append(ids, u.OrderID)
			}
		}
		return ids
	}
	first, second := min(a, b), max(a, b)
	for _, tt := range []struct {
		name string
		q    sweep.AgedQuery
		want []int64
	}{
		{"from before them", sweep.AgedQuery{OlderThan: 10 * time.Minute, After: sweep.TimeKey{At: at.Add(-time.Second)}, Limit: 1000}, []int64{first, second}},
		{"a page of one", sweep.AgedQuery{OlderThan: 10 * time.Minute, After: sweep.TimeKey{At: at}, Limit: 1}, []int64{first}},
		{"after the first", sweep.AgedQuery{OlderThan: 10 * time.Minute, After: sweep.TimeKey{At: at, ID: first}, Limit: 1000}, []int64{second}},
		{"a window that starts after them", sweep.AgedQuery{OlderThan: 10 * time.Minute, YoungerThan: 20 * time.Minute, Limit: 1000}, nil},
		{"a window that holds them, from the start", sweep.AgedQuery{OlderThan: 10 * time.Minute, YoungerThan: 41 * time.Minute, Limit: 1000}, []int64{first, second}},
		{"all but the most recent", sweep.AgedQuery{OlderThan: 6 * time.Minute, YoungerThan: 41 * time.Minute, Limit: 1000}, []int64{first, second}},
		{"the most recent too", sweep.AgedQuery{OlderThan: 4 * time.Minute, YoungerThan: 41 * time.Minute, Limit: 1000}, []int64{first, second, young}},
	} {
		if got := page(tt.q); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v (%d released)", tt.name, got, tt.want, released)
		}
	}
	for _, bad := range []sweep.AgedQuery{{OlderThan: marketing.MinUsedAge - 1, Limit: 10}, {OlderThan: time.Hour, Limit: marketing.MaxUsedPage + 1}} {
		if _, err := svc.ListUsedCoupons(ctx, bad); !errors.Is(err, marketing.ErrInvalid) {
			t.Errorf("ListUsedCoupons(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}
