package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/flashsale/flashsale/loadtest/client"
)

// A base address with a trailing slash (TARGET=http://localhost/) still
// asks for the API's paths: the gateway answers a path with // 404.
func TestBaseWithATrailingSlashAsksForCleanPaths(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.Path
		_, _ = w.Write([]byte("{}"))
	}))
	defer srv.Close()
	if _, err := client.New(srv.URL+"/", 1).Do(context.Background(), http.MethodGet, "/healthz", "", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got != "/healthz" {
		t.Fatalf("the gateway was asked for %q, want /healthz", got)
	}
}
