package audit

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/result"
)

// checkBots checks that no bot bought anything: every bot request was
// refused, and no order, as the platform lists the bot accounts' orders
// and as the sales' stored books hold them, belongs to a bot account.
func checkBots(res *result.Replay, listed map[string]api.Order, stored map[string]int64) result.Check {
	c := result.Check{Name: "bots bought nothing: every bot request refused, no order held by a bot account"}
	if res.Bots == nil {
		c.OK, c.Skipped, c.Detail = true, true, "skipped: the scenario has no bots phase"
		return c
	}
	total, placed := res.Bots.Total()
	bots := map[int64]bool{}
	for _, u := range res.BotsList {
		bots[u.ID] = true
	}
	found := map[string]string{} // order id → where it was found
	for id, o := range listed {
		found[id] = "listed for " + o.UserID
	}
	for id, user := range stored {
		if bots[user] {
			found[id] = "stored for " + strconv.FormatInt(user, 10)
		}
	}
	var held []string
	for _, id := range slices.Sorted(maps.Keys(found)) {
		held = append(held, id+" ("+found[id]+")")
	}
	outcomes := res.Bots.ByOutcome()
	var parts []string
	for _, o := range slices.Sorted(maps.Keys(outcomes)) {
		parts = append(parts, fmt.Sprintf("%s %d", o, outcomes[o]))
	}
	c.OK = total > 0 && placed == 0 && len(held) == 0
	c.Detail = fmt.Sprintf("%d requests from %d bot accounts answered: %s; %d placed; %d orders held by bots", total, res.Bots.Accounts,
		strings.Join(parts, ", "), placed, len(held))
	if total == 0 {
		c.Detail += " (the bots sent nothing: the wall was not tried)"
	}
	if len(held) > 0 {
		c.Detail += ": " + strings.Join(held[:min(len(held), 5)], ", ")
	}
	return c
}
