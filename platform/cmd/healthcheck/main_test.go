package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	tests := []struct {
		url     string
		wantErr bool
	}{
		{srv.URL + "/readyz", false},
		{srv.URL + "/down", true},
		{"http://127.0.0.1:1/readyz", true},
	}
	for _, tt := range tests {
		if err := probe(tt.url); (err != nil) != tt.wantErr {
			t.Errorf("probe(%s) = %v, want error %v", tt.url, err, tt.wantErr)
		}
	}
}
