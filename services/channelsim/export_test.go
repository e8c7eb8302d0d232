package channelsim

// Held counts what channel holds of its real trades, or its marked ones:
// trades by number, merchant refs, and paid trades in the statement's
// index.
func (s *Simulator) Held(channel string, marked bool) (trades, refs, paid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channels[channel]
	if marked {
		c = s.shadows[channel]
	}
	return len(c.trades), len(c.byRef), len(c.paid)
}

// NotifyWorkers is how many notifications a simulator posts at once.
const NotifyWorkers = notifyWorkers

// Pending counts the notifications under way, real or marked: queued,
// or being posted.
func (s *Simulator) Pending(marked bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if marked {
		return s.pending[1]
	}
	return s.pending[0]
}
