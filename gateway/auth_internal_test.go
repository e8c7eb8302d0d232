package gateway

import (
	"testing"
	"time"
)

// TestAccessAdmitsItsRoles: each route's access takes the roles it names
// and no other. A buyer's route takes no role, user and admin; /admin
// takes admin; the big screen's stream admin and screen; a public route
// anyone; an access level not known here no one. A load-test token never
// gets this far (authenticate refuses it as a bearer token), and a role
// the gateway does not know is taken nowhere.
func TestAccessAdmitsItsRoles(t *testing.T) {
	roles := []string{"", RoleUser, RoleAdmin, RoleScreen, RoleLoadTest, "root"}
	for _, tt := range []struct {
		access access
		takes  []string
	}{
		{public, roles},
		{userOnly, []string{"", RoleUser, RoleAdmin}},
		{adminOnly, []string{RoleAdmin}},
		{screenView, []string{RoleAdmin, RoleScreen}},
		{screenView + 1, nil},
	} {
		for _, role := range roles {
			want := false
			for _, r := range tt.takes {
				want = want || r == role
			}
			if got := tt.access.admit(role) == nil; got != want {
				t.Errorf("access %d, role %q: admitted %v, want %v", tt.access, role, got, want)
			}
		}
	}
}

// A screen token is retired when it was issued at or before the time in
// force, read to the second both ways (a token's iat is whole seconds);
// no time retires nothing, and no other role is ever retired.
func TestRetiredReadsTheSecond(t *testing.T) {
	until := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		until  time.Time
		p      principal
		retire bool
	}{
		{"issued at the time", until, principal{Role: RoleScreen, Issued: until}, true},
		{"issued in its second, the time a fraction into it", until.Add(300 * time.Millisecond), principal{Role: RoleScreen, Issued: until.Add(700 * time.Millisecond)}, true},
		{"issued a second after", until, principal{Role: RoleScreen, Issued: until.Add(time.Second)}, false},
		{"issued long before", until, principal{Role: RoleScreen, Issued: until.Add(-30 * 24 * time.Hour)}, true},
		{"no iat", until, principal{Role: RoleScreen}, true},
		{"no time in force", time.Time{}, principal{Role: RoleScreen}, false},
		{"an admin's token", until, principal{Role: RoleAdmin, Issued: until.Add(-time.Hour)}, false},
		{"a buyer's token", until, principal{Issued: until.Add(-time.Hour)}, false},
	} {
		var g Gateway
		g.screenRetiredUntil.Store(&tt.until)
		if got := g.retired(tt.p); got != tt.retire {
			t.Errorf("%s: retired %v, want %v", tt.name, got, tt.retire)
		}
	}
}
