package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/flashsale/flashsale/platform/config"
)

func TestDefaultsAndValues(t *testing.T) {
	env := config.FromMap(map[string]string{"A": "x", "N": "42", "D": "1.5s", "B": "true", "L": "a, b,,c", "EMPTY": " "})
	if got := env.String("A", "d"); got != "x" {
		t.Errorf("String = %q", got)
	}
	if got := env.String("EMPTY", "d"); got != "d" {
		t.Errorf("blank variable should fall back to default, got %q", got)
	}
	if got := env.Int("N", 1); got != 42 {
		t.Errorf("Int = %d", got)
	}
	if got := env.Duration("D", 0); got != 1500*time.Millisecond {
		t.Errorf("Duration = %v", got)
	}
	if got := env.Bool("B", false); !got {
		t.Errorf("Bool = %v", got)
	}
	if got := strings.Join(env.List("L", nil), "|"); got != "a|b|c" {
		t.Errorf("List = %q", got)
	}
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestEveryBadValueIsNamed(t *testing.T) {
	env := config.FromMap(map[string]string{"N": "many", "D": "soon", "B": "perhaps"})
	env.Int("N", 1)
	env.Duration("D", time.Second)
	env.Bool("B", false)
	env.Check(false, "PORT must be positive")
	err := env.Err()
	if err == nil {
		t.Fatal("no error for bad values")
	}
	for _, want := range []string{"N=", "D=", "B=", "PORT must be positive"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestFromFuncSeesEveryRead(t *testing.T) {
	var read []string
	env := config.FromFunc(func(name string) (string, bool) {
		read = append(read, name)
		return "7", name == "SET"
	})
	if got := env.Int("SET", 1); got != 7 {
		t.Errorf("Int(SET) = %d, want 7", got)
	}
	if got := env.Int("UNSET", 1); got != 1 {
		t.Errorf("Int(UNSET) = %d, want the default 1", got)
	}
	if got, want := strings.Join(read, ","), "SET,UNSET"; got != want {
		t.Errorf("read = %q, want %q", got, want)
	}
}

// TestSecretsOutsideDevelopment: a production process needs a secret of
// its own; the repository's public secrets serve development only.
func TestSecretsOutsideDevelopment(t *testing.T) {
	own := "4f9c1e0d7b2a4c8e9f6a3b5d1c7e2f0a"
	tests := []struct {
		name string
		env  map[string]string
		want string // "" when no problem is expected
	}{
		{"own secret", map[string]string{"S": own}, ""},
		{"missing", map[string]string{}, "S is required"},
		{"simulator default", map[string]string{"S": "alipay=alipay-dev-secret"}, "public placeholder"},
		{"compose default", map[string]string{"S": "compose-dev-secret-change-me-0123456789"}, "public placeholder"},
		{"example manifest", map[string]string{"S": "REPLACE-ME-with-32-random-bytes-000000"}, "public placeholder"},
		{"development, missing", map[string]string{config.DevVar: "true"}, ""},
		{"development, public", map[string]string{config.DevVar: "true", "S": "alipay-dev-secret"}, ""},
	}
	for _, tt := range tests {
		env := config.FromMap(tt.env)
		env.Secret("S")
		err := env.Err()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// A secret needed only sometimes is held to Secret's rules only then.
func TestSecretIfNeeded(t *testing.T) {
	for _, tt := range []struct {
		name    string
		need    bool
		env     map[string]string
		wantErr bool
	}{
		{"not needed, missing", false, map[string]string{}, false},
		{"not needed, public", false, map[string]string{"S": "REPLACE-ME"}, false},
		{"needed, missing", true, map[string]string{}, true},
		{"needed, public", true, map[string]string{"S": "REPLACE-ME"}, true},
		{"needed, own", true, map[string]string{"S": "4f9c1e0d7b2a4c8e9f6a3b5d1c7e2f0a"}, false},
	} {
		env := config.FromMap(tt.env)
		got := env.SecretIf(tt.need, "S")
		if err := env.Err(); (err != nil) != tt.wantErr || got != tt.env["S"] {
			t.Errorf("%s: %q, %v; want %q, error %v", tt.name, got, err, tt.env["S"], tt.wantErr)
		}
		if _, ok := env.Defaults()["S"]; !ok {
			t.Errorf("%s: S not recorded as read", tt.name)
		}
	}
}

// A development default (the simulator's address) is taken only with
// the development switch; outside it the variable must be set.
func TestDevDefaultsOutsideDevelopment(t *testing.T) {
	tests := []struct {
		name, want string
		env        map[string]string
		wantErr    bool
	}{
		{"set", "https://channels.example.net", map[string]string{"U": "https://channels.example.net"}, false},
		{"missing", "http://127.0.0.1:9301", map[string]string{}, true},
		{"development, missing", "http://127.0.0.1:9301", map[string]string{config.DevVar: "true"}, false},
	}
	for _, tt := range tests {
		env := config.FromMap(tt.env)
		got := env.DevString("U", "http://127.0.0.1:9301")
		err := env.Err()
		if got != tt.want || (err != nil) != tt.wantErr || (err != nil && !strings.Contains(err.Error(), "U is required")) {
			t.Errorf("%s: %q, %v; want %q, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

// A database's URL is a development default too (a local database
// without a password), and its password a secret: outside development
// the URL must be set and its password must not be a placeholder this
// repository prints (the example manifests' REPLACE-ME). From a review
// (2026-12-08): a production service without the variable ran against
// the development default, and the example's password started it.
func TestDatabaseURLOutsideDevelopment(t *testing.T) {
	const def = "postgres://flashsale@127.0.0.1:5432/orders?sslmode=disable"
	for _, tt := range []struct {
		name, url string
		dev       bool
		want      string // in the error; "" for none
	}{
		{"the operator's own", "postgres://orders:9f3c1a7e5b@db.internal:5432/orders?sslmode=require", false, ""},
		{"missing", "", false, "D is required"},
		{"the example's password", "postgres://flashsale:REPLACE-ME@postgres.managed.example.internal:5432/orders", false, "public placeholder password"},
		{"a DSN with the example's password", "host=db.internal user=flashsale password=replace-me dbname=orders", false, "public placeholder password"},
		{"the example's password as a query parameter", "postgres://flashsale@db.internal/orders?password=REPLACE-ME", false, "public placeholder password"},
		{"a DSN on a host whose name holds a mark", "host=db.example-corp.internal user=orders password=9f3c1a7e5b dbname=examples", false, ""},
		{"no password (certificates)", "postgres://orders@db.internal/orders?sslmode=verify-full", false, ""},
		{"development, missing", "", true, ""},
		{"development, the example's password", "postgres://flashsale:REPLACE-ME@localhost/orders", true, ""},
	} {
		vars := map[string]string{}
		if tt.url != "" {
			vars["D"] = tt.url
		}
		if tt.dev {
			vars[config.DevVar] = "true"
		}
		env := config.FromMap(vars)
		got := env.DatabaseURL("D", def)
		err := env.Err()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v, want no error", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v, want an error saying %q", tt.name, err, tt.want)
		case tt.url != "" && got != tt.url, tt.url == "" && got != def:
			t.Errorf("%s: %q, want the variable or the default", tt.name, got)
		}
	}
}

// Defaults tells what each variable read so far falls back to, whatever
// the environment holds, so the settings table can be written from it.
func TestDefaultsAreRecorded(t *testing.T) {
	env := config.FromMap(map[string]string{"A": "set"})
	env.String("A", "d")
	env.Int("N", 7)
	env.Duration("D", 90*time.Second)
	env.Bool("B", true)
	env.List("L", []string{"x", "y"})
	env.Int("N", 8) // a second read keeps the first default
	want := map[string]string{"A": "d", "N": "7", "D": "1m30s", "B": "true", "L": "x,y"}
	got := env.Defaults()
	if len(got) != len(want) {
		t.Fatalf("defaults = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("default of %s = %q, want %q", k, got[k], v)
		}
	}
}

// Positive and IntIn read and check in one step; a value out of range is
// refused by name, and IntIn checks before a caller narrows the value.
func TestPositiveAndIntInRefuseOutOfRange(t *testing.T) {
	env := config.FromMap(map[string]string{"P_OK": "2s", "P_ZERO": "0s", "I_OK": "7", "I_BIG": "4294967297"})
	if got := env.Positive("P_OK", time.Second); got != 2*time.Second {
		t.Errorf("Positive = %v, want 2s", got)
	}
	if got := env.IntIn("I_OK", 1, 1, 10); got != 7 {
		t.Errorf("IntIn = %d, want 7", got)
	}
	if got := env.Positive("P_UNSET", time.Second); got != time.Second {
		t.Errorf("Positive unset = %v, want the default", got)
	}
	if err := env.Err(); err != nil {
		t.Fatalf("in-range values refused: %v", err)
	}
	env.Positive("P_ZERO", time.Second)
	env.IntIn("I_BIG", 1, 1, 100)
	err := env.Err()
	for _, want := range []string{"P_ZERO=0s: must be positive", "I_BIG=4294967297: must be 1..100"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to say %q", err, want)
		}
	}
}

// The names reserved for examples are placeholders, whatever their case
// or a trailing dot; a name that merely contains "example" is not.
func TestPlaceholderHost(t *testing.T) {
	for host, want := range map[string]bool{
		"example.com": true, "channels.flashsale.example.com": true, "PAY.Example.NET.": true, "a.example.org": true,
		"shop.example": true, "x.invalid": true, "channels.test": true,
		"example.company.com": false, "myexample.com": false, "channels.operator.net": false, "127.0.0.1": false,
	} {
		if got := config.PlaceholderHost(host); got != want {
			t.Errorf("PlaceholderHost(%q) = %v, want %v", host, got, want)
		}
	}
}
