package drive

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/flashsale/flashsale/gateway/api"
	"github.com/flashsale/flashsale/loadtest/client"
	"github.com/flashsale/flashsale/loadtest/result"
)

// TestAnsweredLaterSettlesAnAttemptThatGotNoAnswer: an attempt that got
// no answer (503 after its retries) and is answered when its buyer comes
// back with the key counts as that answer: the order its call made
// meanwhile is found and counted as accepted, not failed, so the audit's
// "exactly the accepted orders" holds.
func TestAnsweredLaterSettlesAnAttemptThatGotNoAnswer(t *testing.T) {
	l := newSaleLedger([]client.User{{ID: 1}, {ID: 2}})
	unavailable := &client.APIError{Status: 503, Code: "UNAVAILABLE"}
	keys := make([]string, 2)
	for user := range 2 {
		key, replayed := l.nextKey(user, false)
		keys[user] = key
		if out := l.settle(user, key, replayed, 1, api.SeckillAccepted{}, unavailable); out != result.Unavailable {
			t.Fatalf("a 503 settled as %s", out)
		}
	}
	if out := l.answeredLater(0, keys[0], false, 1, result.Unavailable, api.SeckillAccepted{OrderID: "70"}, nil); out != result.Accepted {
		t.Fatalf("the order found when the buyer came back settled as %s", out)
	}
	res := l.result(1)
	if res.Counts[result.Unavailable] != 1 || res.Counts[result.Accepted] != 1 || res.AskedAgain != 1 || res.Orders["70"] != 1 || res.DemandUnits != 1 {
		t.Fatalf("counts %v, answered later %d, orders %v, demand %d; want 1 accepted (order 70 of user 1), 1 still unavailable, 1 answered later, demand 1",
			res.Counts, res.AskedAgain, res.Orders, res.DemandUnits)
	}
}

// A buy whose first try got no answer and whose quick repeat was refused
// with 429 is still unknown (the first try may have made an order): it
// comes back unavailable, so its buyer asks again later, never booked as
// a refusal.
func TestRefusedRepeatOfAFailedTryLeavesTheBuyUnknown(t *testing.T) {
	var tries atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if tries.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":{"code":"UNAVAILABLE","message":"timed out"}}`)
			return
		}
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"error":{"code":"OVERLOADED","message":"full"}}`)
	}))
	defer srv.Close()
	_, err := buy(context.Background(), client.New(srv.URL, 1), "t", "1", 1, "k1-1", nil)
	if out := classify(err); out != result.Unavailable || tries.Load() != 2 {
		t.Fatalf("503 then 429: outcome %s after %d tries (%v), want unavailable after 2", out, tries.Load(), err)
	}
}
