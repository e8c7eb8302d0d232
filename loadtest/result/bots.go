package result

import (
	"sync"
)

// The bots' tricks, each aimed at one part of the wall; an arrival's
// roll picks one. A bot's buys must all be refused.
const (
	// TrickNoChallenge fires buys straight at the route from the bot's
	// own device, as fast as the script runs: the challenge, the
	// device's and the account's limits refuse them.
	TrickNoChallenge = "no challenge"
	// TrickOverLimit solves a challenge as a browser does and spends it
	// on a buy of more units than the sale allows one buyer: the order
	// path refuses it, and the challenge is used up (unless the sale's
	// sold-out flag refused the buy first: the challenge is then
	// dropped, as it would still buy).
	TrickOverLimit = "over the limit"
	// TrickReused sends the bot's used challenge again with a new key.
	TrickReused = "reused challenge"
	// TrickShared sends another bot account's used challenge (one solve
	// shared by the farm).
	TrickShared = "shared challenge"
	// TrickBlocked sends from the scenario's blocklisted device.
	TrickBlocked = "blocklisted device"
)

// BotTricks lists the tricks in report order.
var BotTricks = []string{TrickNoChallenge, TrickOverLimit, TrickReused, TrickShared, TrickBlocked}

// BotStats counts the bots' requests by trick and by what the platform
// answered ("ok" for a 2xx, else the error code in lower case or
// "errors"). Accounts is how many bot accounts there were.
type BotStats struct {
	Accounts int                       `json:"accounts"`
	Answers  map[string]map[string]int `json:"answers"`
	mu       sync.Mutex
}

// Add counts one bot request of trick answered outcome.
func (s *BotStats) Add(trick, outcome string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Answers[trick] == nil {
		s.Answers[trick] = map[string]int{}
	}
	s.Answers[trick][outcome]++
}

// Total is every bot request, and placed those answered 2xx.
func (s *BotStats) Total() (total, placed int) {
	for _, byOutcome := range s.Answers {
		for o, n := range byOutcome {
			total += n
			if o == "ok" {
				placed += n
			}
		}
	}
	return total, placed
}

// ByOutcome sums the answers over the tricks.
func (s *BotStats) ByOutcome() map[string]int {
	out := map[string]int{}
	for _, byOutcome := range s.Answers {
		for o, n := range byOutcome {
			out[o] += n
		}
	}
	return out
}
