package check

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/flashsale/flashsale/platform/config"
)

// Setting is one FLASHSALE_* variable as the binaries read it: who reads
// it, its default, and what it is for (the doc comment of the
// configuration field it fills).
type Setting struct {
	Name    string
	Readers []string // services, sorted
	// Defaults by default value, with the services that fall back to
	// it: most variables have one, listen addresses one per service.
	Defaults map[string][]string
	Doc      string
}

// Settings returns every FLASHSALE_* variable a service binary reads,
// from running each binary's configuration on an empty environment (what
// it reads and falls back to) and the source under root (what each is
// for). docs/configuration.md is written from it (cmd/configdoc) and
// TestConfigurationDocIsCurrent holds the two together.
func Settings(root string) ([]Setting, error) {
	docs, err := settingDocs(root)
	if err != nil {
		return nil, err
	}
	byName := map[string]*Setting{}
	for _, b := range Binaries {
		env := config.FromFunc(func(string) (string, bool) { return "", false })
		b.Load(env)
		defaults := env.Defaults()
		for _, v := range mainVars {
			if _, ok := defaults[v]; !ok {
				defaults[v] = ""
			}
		}
		for name, def := range defaults {
			s := byName[name]
			if s == nil {
				s = &Setting{Name: name, Defaults: map[string][]string{}, Doc: docs[name]}
				byName[name] = s
			}
			s.Readers = append(s.Readers, b.Service)
			s.Defaults[def] = append(s.Defaults[def], b.Service)
		}
	}
	var out []Setting
	for _, s := range byName {
		slices.Sort(s.Readers)
		for _, services := range s.Defaults {
			slices.Sort(services)
		}
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Setting) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// envGetters are the config.Env methods that read a variable.
var envGetters = []string{"String", "Int", "IntIn", "Duration", "Positive", "Bool", "List", "Secret", "SecretIf", "DevString"}

// settingDocs maps each FLASHSALE_* variable read in the source under
// root (services, gateway, platform) to the first sentence of the doc
// comment of the struct field its value fills: the key of the composite
// literal or the field of the assignment it is written to, looked up
// among the struct types of the same package. A variable read where no
// field takes it directly (inside a helper's own logic) gets the comment
// above the line that reads it.
func settingDocs(root string) (map[string]string, error) {
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, dir := range []string{"services", "gateway", "platform"} {
		pkgs := map[string][]*ast.File{} // directory → files
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			pkgs[filepath.Dir(path)] = append(pkgs[filepath.Dir(path)], f)
			return nil
		})
		if err != nil {
			return nil, err
		}
		// In a fixed order: a variable several packages read takes the
		// doc of the first.
		for _, dir := range slices.Sorted(maps.Keys(pkgs)) {
			files := pkgs[dir]
			fields := structFieldDocs(fset, files)
			for _, f := range files {
				findSettings(fset, f, fields, out)
			}
		}
	}
	return out, nil
}

// structFieldDocs maps "Type.Field" and "Field" (when only one struct of
// the package has it) to the field's doc comment.
func structFieldDocs(fset *token.FileSet, files []*ast.File) map[string]string {
	docs := map[string]string{}
	count := map[string]int{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return true
			}
			group, groupEnd := "", 0 // the doc of the lines just above
			for _, fl := range st.Fields.List {
				text := fl.Doc.Text()
				if text == "" {
					text = fl.Comment.Text()
				}
				// A field on the line right after a documented one,
				// without a doc of its own, shares that doc (a block
				// of fields one comment explains).
				line := fset.Position(fl.Pos()).Line
				switch {
				case text != "":
					group = text
				case line == groupEnd+1:
					text = group
				default:
					group = ""
				}
				groupEnd = fset.Position(fl.End()).Line
				for _, name := range fl.Names {
					docs[ts.Name.Name+"."+name.Name] = text
					docs[name.Name] = text
					count[name.Name]++
				}
			}
			return true
		})
	}
	for name, c := range count {
		if c > 1 {
			delete(docs, name)
		}
	}
	return docs
}

// findSettings records the doc of every variable f reads.
func findSettings(fset *token.FileSet, f *ast.File, fields map[string]string, out map[string]string) {
	var stack []ast.Node
	ast.Inspect(f, func(n ast.Node) bool {
		if n == nil {
			stack = stack[:len(stack)-1]
			return true
		}
		stack = append(stack, n)
		name, ok := settingRead(n)
		if !ok || out[name] != "" {
			return true
		}
		if doc := fieldDoc(stack, fields); doc != "" {
			out[name] = firstSentence(doc)
			return true
		}
		out[name] = firstSentence(lineComment(fset, f, stack))
		return true
	})
}

// settingRead reports the variable n reads, if n is env.<Getter>("FLASHSALE_…", …).
func settingRead(n ast.Node) (string, bool) {
	call, ok := n.(*ast.CallExpr)
	if !ok || len(call.Args) == 0 {
		return "", false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || !slices.Contains(envGetters, sel.Sel.Name) {
		return "", false
	}
	lit, ok := call.Args[0].(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	name, err := strconv.Unquote(lit.Value)
	if err != nil || !strings.HasPrefix(name, "FLASHSALE_") {
		return "", false
	}
	return name, true
}

// fieldDoc is the doc of the field the innermost key or assignment
// around the read fills.
func fieldDoc(stack []ast.Node, fields map[string]string) string {
	for i := len(stack) - 1; i >= 0; i-- {
		switch n := stack[i].(type) {
		case *ast.KeyValueExpr:
			// The innermost documented field: a value read into an
			// undocumented field of a small struct (Limit.RPS) takes
			// the doc of the field that struct fills (RouteLimit).
			key, ok := n.Key.(*ast.Ident)
			if !ok || i == 0 {
				continue
			}
			if lit, ok := stack[i-1].(*ast.CompositeLit); ok {
				if doc := fields[typeName(lit.Type)+"."+key.Name]; doc != "" {
					return doc
				}
			}
			if doc := fields[key.Name]; doc != "" {
				return doc
			}
		case *ast.AssignStmt:
			if sel, ok := n.Lhs[0].(*ast.SelectorExpr); ok {
				return fields[sel.Sel.Name]
			}
			return ""
		case *ast.FuncDecl:
			return ""
		}
	}
	return ""
}

func typeName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.SelectorExpr:
		return t.Sel.Name
	}
	return ""
}

// lineComment is the comment ending on the line above the statement
// that holds the read.
func lineComment(fset *token.FileSet, f *ast.File, stack []ast.Node) string {
	for i := len(stack) - 1; i >= 0; i-- {
		if _, ok := stack[i].(ast.Stmt); !ok {
			continue
		}
		line := fset.Position(stack[i].Pos()).Line
		for _, cg := range f.Comments {
			if fset.Position(cg.End()).Line+1 == line {
				return cg.Text()
			}
		}
		return ""
	}
	return ""
}

// firstSentence is s's first sentence on one line.
func firstSentence(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if i := strings.Index(s, ". "); i >= 0 {
		s = s[:i+1]
	}
	return s
}

// FormatDefaults writes a setting's defaults for the table.
func FormatDefaults(s Setting) string {
	if len(s.Defaults) == 1 {
		for def := range s.Defaults {
			return code(def)
		}
	}
	var parts []string
	for def, services := range s.Defaults {
		parts = append(parts, fmt.Sprintf("%s (%s)", code(def), strings.Join(services, ", ")))
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}

func code(v string) string {
	if v == "" {
		return "none"
	}
	return "`" + v + "`"
}

// settingNotes say what a variable is for where no field's doc says it
// (a name built at run time, a field of another package's struct) or
// where the field's doc is one service's and the variable is several's.
// TestConfigurationDocIsCurrent fails on a variable with neither.
var settingNotes = map[string]string{
	"FLASHSALE_ADMISSION_SECKILL_MIN":     "Floor of the adaptive concurrency limit on the flash-sale route (docs/protection.md).",
	"FLASHSALE_ADMISSION_SECKILL_INITIAL": "Starting value of the adaptive concurrency limit on the flash-sale route.",
	"FLASHSALE_ADMISSION_SECKILL_MAX":     "Ceiling of the adaptive concurrency limit on the flash-sale route; 0 turns admission off.",
	"FLASHSALE_ADMISSION_WRITE_MIN":       "Floor of the adaptive concurrency limit on the other write routes.",
	"FLASHSALE_ADMISSION_WRITE_INITIAL":   "Starting value of the adaptive concurrency limit on the other write routes.",
	"FLASHSALE_ADMISSION_WRITE_MAX":       "Ceiling of the adaptive concurrency limit on the other write routes; 0 turns it off.",
	"FLASHSALE_BLOCKLIST_DEVICES":         "Comma-separated device ids (X-Device-Id) refused 403 BLOCKED on the buy and the challenge; Consul's blocklist/devices replaces it.",
	"FLASHSALE_BLOCKLIST_IPS":             "Comma-separated client addresses or CIDRs refused 403 BLOCKED; Consul's blocklist/ips replaces it.",
	"FLASHSALE_BLOCKLIST_USERS":           "Comma-separated user ids refused 403 BLOCKED; Consul's blocklist/users replaces it.",
	"FLASHSALE_BREAKER_OPEN_FOR":          "How long an open circuit breaker refuses before it lets a probe through (the gateway's per downstream, payment's per channel).",
	"FLASHSALE_CHALLENGE_DIFFICULTY":      "Leading zero bits of the proof-of-work a sale that requires the challenge asks for before the buy (docs/protection.md).",
	"FLASHSALE_CHALLENGE_JITTER":          "The longest random wait a challenge imposes before its buy may be sent: spreads the opening second over a few.",
	"FLASHSALE_CHALLENGE_TTL":             "How long a challenge can be answered.",
	"FLASHSALE_CHANNELS":                  "The payment channels as name=secret pairs, the same on payment and the simulator; a secret: required outside development.",
	"FLASHSALE_CHANNEL_TIMEOUT":           "Bounds each call to a payment channel.",
	"FLASHSALE_STUB_CHANNELS":             "The stub's channels as name=secret pairs: the live channels' names, secrets of their own (never a live one); a secret, required with FLASHSALE_STUB_CHANNELS_URL (docs/pressure-test.md).",
	"FLASHSALE_CONSUMER_BATCH_WAIT":       "How long a consumer batch waits after its first message before it is written (or at FLASHSALE_CONSUMER_BATCH_SIZE messages).",
	"FLASHSALE_DEGRADE_AUTO":              "Lets each gateway replica raise its degrade level by itself from admission refusals, a p99 over budget and open breakers, and lower it once calm; Consul's degrade_auto overrides it.",
	"FLASHSALE_DEGRADE_LEVEL":             "The degrade level set by hand (normal, protect, survive, close) when Consul holds none (docs/protection.md).",
	"FLASHSALE_CONSUL_TOKEN":              "The Consul ACL token the service presents; a secret, required with FLASHSALE_CONSUL_ADDR outside development (Consul's KV holds the operator's switches).",
	"FLASHSALE_DEV":                       "The development switch: dev tokens on the gateway, the secrets printed in this repository accepted, Consul without a token, the channel simulator. Leave unset in production.",
	"FLASHSALE_EXPIRY_BATCH":              "How many due orders an expiry worker claims at once (released in one batch).",
	"FLASHSALE_EXPIRY_LEASE":              "How long an expiry worker holds the orders it claimed before another may take them.",
	"FLASHSALE_EXPIRY_WORKERS":            "How many expiry workers run in this order replica.",
	"FLASHSALE_FLIGHT_RECORDER_DIR":       "Directory for the execution traces (flight recorder) of the seconds before a call that ran out of its deadline; empty runs no recorder (docs/operations.md).",
	"FLASHSALE_INVENTORY_TIMEOUT":         "Bounds each call from product to inventory (remaining stock).",
	"FLASHSALE_KAFKA_PARTITIONS":          "Partitions of the order topics when the order service creates them (bounds the consumers working in parallel).",
	"FLASHSALE_LOG_LEVEL":                 "Log level: debug, info, warn or error (default info; `make demo` logs warn and above to loadtest/out/platform.log unless it is set). Debug adds each move of the gateway's admission limits and budget guards (docs/gateway.md).",
	"FLASHSALE_OTLP_ENDPOINT":             "host:port of an OpenTelemetry collector to export traces to over gRPC; empty exports none.",
	"FLASHSALE_POSTGRES_MAX_CONNS":        "Bounds the service's Postgres connection pool.",
	"FLASHSALE_POSTGRES_URL":              "The service's own Postgres database (products, orders, payment or marketing).",
	"FLASHSALE_RATE_IP_MAX_KEYS":          "How many client addresses the per-address limit tracks at once on a replica.",
	"FLASHSALE_RATE_DEVICE_BURST":         "Burst of each device's (X-Device-Id) limit on the buy and the challenge.",
	"FLASHSALE_RATE_DEVICE_RPS":           "Requests a second of each device's (X-Device-Id) limit on the buy and the challenge.",
	"FLASHSALE_ROUTER_SEED":               "Seeds the payment router's weighted random choice of a channel.",
	"FLASHSALE_RPC_TIMEOUT":               "Bounds each gRPC call the service makes that carries no deadline of its own.",
	"FLASHSALE_SCREEN_PAYMENT_METRICS":    "The payment replicas' /metrics URLs, which the big screen reads once a second for payment outcomes per channel.",
	"FLASHSALE_SWEEP_EVERY":               "How often payment looks for payments stuck PAYING to ask their channel.",
	"FLASHSALE_TRUSTED_PROXIES":           "Comma-separated addresses or CIDRs whose X-Forwarded-For the gateway believes for the client address.",
}

// Text is what the table says a setting is for.
func (s Setting) Text() string {
	if n, ok := settingNotes[s.Name]; ok {
		return n
	}
	return s.Doc
}

// configurationIntro heads docs/configuration.md.
const configurationIntro = `# Configuration

Every process of the platform is configured by ` + "`FLASHSALE_*`" + ` environment
variables, read once at start; an invalid value stops the process with one
message naming every bad variable (` + "`platform/config`" + `). The same variables
configure the binaries (compose, Kubernetes, ` + "`make up-split`" + `) and the
in-process platform of ` + "`make up`" + ` and ` + "`make demo`" + `, which read them from the
shell (addresses, the JWT secret and the development switch excepted: the
harness picks its own). Runtime switches (degrade level, rate limits, the
payment channels' weights) also live in Consul KV, which overrides the
variables while the platform runs (docs/operations.md, "Switches").

This table is written from the code: each binary's configuration is run on
an empty environment to see what it reads and falls back to, and the text
is the doc comment of the field each variable fills
(` + "`deploy/check/settings.go`" + `). Do not edit it by hand; after changing a
variable, run ` + "`make config-doc`" + `. ` + "`TestConfigurationDocIsCurrent`" + ` fails
while it is out of date.

| variable | read by | default | what it is for |
| --- | --- | --- | --- |
`

// ConfigurationDoc is docs/configuration.md as the code under root has it.
func ConfigurationDoc(root string) (string, error) {
	settings, err := Settings(root)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(configurationIntro)
	for _, s := range settings {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", s.Name, strings.Join(s.Readers, ", "), FormatDefaults(s),
			strings.ReplaceAll(s.Text(), "|", `\|`))
	}
	return b.String(), nil
}
