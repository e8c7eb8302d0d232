package local

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Link is one line of a banner: what a URL is for, and the URL.
type Link struct {
	Name, URL string
}

// Banner writes the one screen a person needs after bringing the platform
// up: a title and every URL to open, aligned, between two rules, so it
// stands out from the logs above it.
func Banner(w io.Writer, title string, links []Link, footer string) {
	width := 0
	for _, l := range links {
		width = max(width, utf8.RuneCountInString(l.Name))
	}
	rule := strings.Repeat("─", 72)
	fmt.Fprintf(w, "\n%s\n  %s\n\n", rule, title)
	for _, l := range links {
		fmt.Fprintf(w, "  %-*s  %s\n", width, l.Name, l.URL)
	}
	if footer != "" {
		fmt.Fprintf(w, "\n  %s\n", footer)
	}
	fmt.Fprintf(w, "%s\n", rule)
}

// ComposeLinks are the URLs `docker compose up` publishes on this
// machine (deploy/check holds each port against docker-compose.yml).
var ComposeLinks = []Link{
	{"API (gateway)", "http://localhost:8080"},
	{"dev token", "POST http://localhost:8080/api/v1/dev/token"},
	{"gateway metrics", "http://localhost:8080/metrics"},
	{"channel simulator", "http://localhost:9301"},
	{"Grafana", "http://localhost:3000/d/flashsale (anonymous viewer; admin / flashsale)"},
	{"Jaeger", "http://localhost:16686"},
	{"Prometheus", "http://localhost:9090"},
	{"Consul UI and KV", "http://localhost:8500"},
}
