package scenario

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// maxRate bounds a phase's arrival rate: the replay starts a goroutine
// per arrival, and a million a second is far beyond what one load
// generator sends (YAML's .inf, which YAML reads as a number, would never
// let the schedule move on).
const maxRate = 1_000_000

// checkFunc records a problem of field when ok is false.
type checkFunc func(ok bool, field, format string, args ...any)

// Validate reports every problem of the scenario, each naming its field.
func (s *Scenario) Validate() error {
	var errs []error
	check := func(ok bool, field, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
		}
	}
	check(s.Name != "", "name", "is required")
	check(s.Users.Count > 0, "users.count", "must be positive, got %d", s.Users.Count)
	check(s.Users.FirstID > 1, "users.first_id", "must be above 1 (user 1 is the admin), got %d", s.Users.FirstID)
	activities, challenged := s.validateCatalog(check)
	s.validateMarketing(check)
	s.validatePlatform(check)
	s.validatePhases(check, activities, challenged)
	s.validatePayment(check)
	s.validateFaults(check)
	check(*s.Drain > 0, "drain", "must be positive")
	return errors.Join(errs...)
}

// validateCatalog checks the products and the flash sales, and returns
// the sales' keys and which of them require the challenge.
func (s *Scenario) validateCatalog(check checkFunc) (activities, challenged map[string]bool) {
	products := map[string]bool{}
	for i, p := range s.Catalog.Products {
		f := fmt.Sprintf("catalog.products[%d]", i)
		check(p.Key != "", f+".key", "is required")
		check(!products[p.Key], f+".key", "%q is used twice", p.Key)
		products[p.Key] = true
		check(p.Title != "", f+".title", "is required")
		check(p.Price > 0, f+".price", "must be positive cents, got %d", p.Price)
		check(p.Stock >= 0, f+".stock", "must not be negative, got %d", p.Stock)
	}
	activities, challenged = map[string]bool{}, map[string]bool{}
	for i, a := range s.Catalog.Activities {
		challenged[a.Key] = a.Challenge
		f := fmt.Sprintf("catalog.activities[%d]", i)
		check(a.Key != "", f+".key", "is required")
		check(!activities[a.Key], f+".key", "%q is used twice", a.Key)
		activities[a.Key] = true
		check(products[a.Product], f+".product", "%q is not a key of catalog.products", a.Product)
		check(a.Price > 0, f+".price", "must be positive cents, got %d", a.Price)
		check(a.Stock > 0, f+".stock", "must be positive, got %d", a.Stock)
		check(a.PerUserLimit > 0, f+".per_user_limit", "must be positive, got %d", a.PerUserLimit)
		check(a.StartsIn >= 0, f+".starts_in", "must not be negative")
		check(a.Lasts > 0, f+".lasts", "must be positive")
	}
	return activities, challenged
}

// validateMarketing checks the promotions and the coupon templates.
func (s *Scenario) validateMarketing(check checkFunc) {
	products := map[string]bool{}
	for _, p := range s.Catalog.Products {
		products[p.Key] = true
	}
	for i, p := range s.Catalog.Promotions {
		f := fmt.Sprintf("catalog.promotions[%d]", i)
		for j, k := range p.Products {
			check(products[k], fmt.Sprintf("%s.products[%d]", f, j), "%q is not a key of catalog.products", k)
		}
		switch p.Kind {
		case PromotionSKUDiscount:
			check(len(p.Products) > 0, f+".products", "a SKU_DISCOUNT needs at least one product")
			check(p.RateBP >= 1 && p.RateBP <= 9999, f+".rate_bp", "must be in 1..9999 (9000 is 90%%), got %d", p.RateBP)
			check(len(p.Tiers) == 0, f+".tiers", "are for a FULL_REDUCTION")
		case PromotionFullReduction:
			check(len(p.Tiers) >= 1 && len(p.Tiers) <= 10, f+".tiers", "a FULL_REDUCTION needs 1 to 10 tiers, got %d", len(p.Tiers))
			for j, t := range p.Tiers {
				check(t.Off >= 1 && t.Off <= t.Threshold, fmt.Sprintf("%s.tiers[%d]", f, j), "needs 1 <= off <= threshold, got off %d, threshold %d", t.Off, t.Threshold)
			}
			check(p.RateBP == 0, f+".rate_bp", "is for a SKU_DISCOUNT")
		default:
			check(false, f+".kind", "must be SKU_DISCOUNT or FULL_REDUCTION, got %q", p.Kind)
		}
	}
	for i, c := range s.Catalog.Coupons {
		f := fmt.Sprintf("catalog.coupons[%d]", i)
		check(c.Amount > 0, f+".amount", "must be positive cents, got %d", c.Amount)
		check(c.Threshold >= c.Amount, f+".threshold", "must be at least the amount %d, got %d", c.Amount, c.Threshold)
		check(c.Share > 0 && c.Share <= 1, f+".share", "must be in (0, 1], got %g", c.Share)
	}
}

// validatePlatform checks the assumptions about the platform and the bots.
func (s *Scenario) validatePlatform(check checkFunc) {
	check(s.Platform.PaymentWindow >= 0, "platform.payment_window", "must not be negative")
	check(s.Platform.OrderReplicas >= 0, "platform.order_replicas", "must not be negative")
	check(s.Platform.ChallengeDifficulty >= 0 && s.Platform.ChallengeDifficulty <= 24, "platform.challenge_difficulty", "must be in 0..24, got %d", s.Platform.ChallengeDifficulty)
	check(s.Bots.Accounts >= 0, "bots.accounts", "must not be negative")
	check(s.Bots.BlockedDevice == "" || len(s.Bots.BlockedDevice) <= 128 && !strings.ContainsAny(s.Bots.BlockedDevice, " ,"),
		"bots.blocked_device", "must be a device id (up to 128 characters, no space or comma), got %q", s.Bots.BlockedDevice)
}

// validatePhases checks each phase against the catalogue's sales.
func (s *Scenario) validatePhases(check checkFunc, activities, challenged map[string]bool) {
	check(len(s.Phases) > 0, "phases", "at least one phase is required")
	names := map[string]bool{}
	for i, p := range s.Phases {
		f := fmt.Sprintf("phases[%d]", i)
		check(p.Name != "", f+".name", "is required")
		check(!names[p.Name], f+".name", "%q is used twice", p.Name)
		names[p.Name] = true
		switch p.Kind {
		case PhaseBrowse, PhaseCheckout:
			check(len(s.Catalog.Products) > 0, f+".kind", "%s needs catalog.products", p.Kind)
		case PhaseCountdown, PhaseSeckill:
			check(len(s.Catalog.Activities) > 0, f+".kind", "%s needs catalog.activities", p.Kind)
		case PhaseBots:
			check(s.Bots.Accounts > 0, f+".kind", "bots needs bots.accounts")
			check(len(p.Activities) > 0, f+".activities", "bots needs the sales they aim at")
			for j, a := range p.Activities {
				check(!activities[a] || challenged[a], fmt.Sprintf("%s.activities[%d]", f, j),
					"%q does not require the challenge: a bot's buy without one would be placed", a)
			}
		default:
			check(false, f+".kind", "must be one of browse, countdown, seckill, checkout, bots; got %q", p.Kind)
		}
		check(p.Start >= 0, f+".start", "must not be negative")
		check(p.Ramp >= 0 && p.Hold >= 0 && p.Ramp+p.Hold > 0, f+".ramp/hold", "must not be negative and must add up to more than zero")
		check(p.Rate > 0 && p.Rate <= maxRate, f+".rate", "must be a positive arrival rate per second up to %d, got %g", maxRate, p.Rate)
		check(p.RateFrom >= 0 && p.RateFrom <= maxRate, f+".rate_from", "must be from 0 to %d, got %g", maxRate, p.RateFrom)
		for j, a := range p.Activities {
			check(activities[a], fmt.Sprintf("%s.activities[%d]", f, j), "%q is not a key of catalog.activities", a)
		}
		check(p.Quantity > 0, f+".quantity", "must be positive, got %d", p.Quantity)
		check(p.ReplayShare >= 0 && p.ReplayShare < 1, f+".replay_share", "must be in [0, 1), got %g", p.ReplayShare)
		check(p.Lines[0] >= 1 && p.Lines[1] >= p.Lines[0], f+".lines", "must be [min, max] with 1 <= min <= max, got %v", p.Lines)
		check(p.CouponShare >= 0 && p.CouponShare <= 1, f+".coupon_share", "must be in [0, 1], got %g", p.CouponShare)
	}
}

// validatePayment checks what the buyers do with their orders.
func (s *Scenario) validatePayment(check checkFunc) {
	pay := s.Payment
	check(pay.PayShare >= 0 && pay.CancelShare >= 0 && pay.PayShare+pay.CancelShare <= 1,
		"payment.pay_share/cancel_share", "must not be negative and must add up to at most 1, got %g + %g", pay.PayShare, pay.CancelShare)
	check(pay.RefundShare >= 0 && pay.RefundShare <= 1, "payment.refund_share", "must be in [0, 1], got %g", pay.RefundShare)
	check(pay.StrangerShare >= 0 && pay.StrangerShare <= 1, "payment.stranger_share", "must be in [0, 1], got %g", pay.StrangerShare)
	check(pay.LateShare >= 0 && pay.DuplicateShare >= 0 && pay.LateShare+pay.DuplicateShare <= 1,
		"payment.late_share/duplicate_share", "must not be negative and must add up to at most 1, got %g + %g", pay.LateShare, pay.DuplicateShare)
	check(pay.DuplicateShare == 0 || len(pay.Channels) >= 2, "payment.duplicate_share", "a second payment needs a second channel in payment.channels")
	check(pay.Delay[0] >= 0 && pay.Delay[1] >= pay.Delay[0], "payment.delay", "must be [min, max] with 0 <= min <= max")
	weight := 0
	for ch, w := range pay.Channels {
		check(w >= 0, "payment.channels."+ch, "weight must not be negative, got %d", w)
		weight += w
	}
	check(pay.PayShare == 0 || weight > 0, "payment.channels", "need a positive weight when pay_share is above 0")
}

// validateFaults checks each fault: a channel's, or a target's with a
// mode that target takes.
func (s *Scenario) validateFaults(check checkFunc) {
	pay := s.Payment
	for i, ft := range s.Faults {
		f := fmt.Sprintf("faults[%d]", i)
		check(ft.At >= 0, f+".at", "must not be negative")
		check(ft.Lasts > 0, f+".lasts", "must be positive")
		if ft.Target != "" {
			modes, known := targetModes[ft.Target]
			check(ft.Channel == "", f+".channel", "a fault has a channel or a target, not both")
			check(known, f+".target", "must be redis, postgres, kafka, inventory, order or order-replica, got %q", ft.Target)
			check(ft.Target != "order-replica" || s.Platform.OrderReplicas > FaultReplica, f+".target",
				"order-replica kills replica %d and needs platform.order_replicas of at least %d, got %d", FaultReplica, FaultReplica+1, s.Platform.OrderReplicas)
			check(!known || slices.Contains(modes, ft.Mode), f+".mode", "%q takes %s, got %q", ft.Target, strings.Join(modes, ", "), ft.Mode)
			check(ft.Mode != FaultLatency || ft.Latency > 0 && ft.Jitter >= 0 && ft.Jitter <= ft.Latency, f+".latency",
				"must be positive, with 0 <= jitter <= latency")
			check(ft.Mode != FaultBandwidth || ft.RateKB > 0, f+".rate_kb", "must be positive for a bandwidth fault")
			continue
		}
		check(ft.Channel != "", f+".channel", "is required (or a target)")
		check(ft.Mode == FaultDown || ft.Mode == FaultSlow || ft.Mode == FaultFailing, f+".mode", "must be down, slow or failing, got %q", ft.Mode)
		_, weighted := pay.Channels[ft.Channel]
		check(ft.Mode != FaultDown || weighted, f+".channel", "%q needs a weight in payment.channels to come back with", ft.Channel)
		check(ft.Mode != FaultSlow || ft.Latency > 0, f+".latency", "must be positive for a slow channel")
		check(ft.Mode != FaultFailing || ft.FailureRate > 0 && ft.FailureRate <= 1, f+".failure_rate", "must be in (0, 1] for a failing channel, got %g", ft.FailureRate)
	}
}
