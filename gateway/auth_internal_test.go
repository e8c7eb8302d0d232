package gateway

import "testing"

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
