package check

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/constant"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The runtime calls of the platform as the code makes them, for
// docs/architecture.md's map to be held against (architecture_test.go).
// Each process's command is type-checked from source with everything it
// imports from the repository (the rest comes from the build cache's
// export data), and its calls are read off the types:
//
//   - a gRPC call is a method call on a generated <Service>Client of
//     proto/ in code the process can run (DeriveCallGraph says which);
//     the serving process is the one whose code registers the service
//     (Register<Service>Server);
//   - a Kafka produce is a kafka-go Writer (or WriterConfig) literal, a
//     consume a ReaderConfig literal, in code the process can run; their
//     Topic and GroupID are followed back, through parameters, struct
//     fields and variables, to the constants they are set from.

// modulePrefix is the import path every package of the repository starts with.
const modulePrefix = "github.com/flashsale/flashsale/"

// kafkaGo is the Kafka client the services use.
const kafkaGo = "github.com/segmentio/kafka-go"

// Processes are the commands the map draws, by package directory: the
// long-lived services, and the load driver that compose runs as a job.
func Processes() map[string]string {
	out := map[string]string{"loadtest/cmd/loadtest": "loadtest"}
	for dir, b := range Binaries {
		out[dir] = b.Service
	}
	return out
}

// rpcCall is a gRPC method a process calls.
type rpcCall struct{ process, service, method string }

// kafkaUse is a topic a process produces to or (with a group) consumes.
type kafkaUse struct {
	process, topic, group string
	consume               bool
}

// codeGraph is what the code calls.
type codeGraph struct {
	// rpcs are the gRPC methods each process calls.
	rpcs map[rpcCall]bool
	// servers are the processes registering each gRPC service.
	servers map[string][]string
	// kafka are the topics each process produces to and consumes.
	kafka map[kafkaUse]bool
}

// listedPackage is a package as go list describes it.
type listedPackage struct {
	dir, export string
	goFiles     []string
	deps        []string
}

// srcPackage is a package of the repository type-checked from source.
type srcPackage struct {
	path  string
	files []*ast.File
	info  *types.Info
	types *types.Package
}

// loader type-checks the repository's packages from source and imports
// every other package from its export data; one loader's objects are
// shared by all the packages it checks, so a field or a function is the
// same object wherever it is used.
type loader struct {
	fset   *token.FileSet
	listed map[string]listedPackage
	gc     types.Importer
	pkgs   map[string]*srcPackage
}

func newLoader(listed map[string]listedPackage) *loader {
	l := &loader{fset: token.NewFileSet(), listed: listed, pkgs: map[string]*srcPackage{}}
	l.gc = importer.ForCompiler(l.fset, "gc", func(path string) (io.ReadCloser, error) {
		p, ok := listed[path]
		if !ok || p.export == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(p.export)
	})
	return l
}

func (l *loader) Import(path string) (*types.Package, error) {
	return l.ImportFrom(path, "", 0)
}

func (l *loader) ImportFrom(path, _ string, _ types.ImportMode) (*types.Package, error) {
	if path == "unsafe" {
		return types.Unsafe, nil
	}
	if !strings.HasPrefix(path, modulePrefix) {
		return l.gc.Import(path)
	}
	p, err := l.load(path)
	if err != nil {
		return nil, err
	}
	return p.types, nil
}

// load type-checks the repository's package path from source, once.
func (l *loader) load(path string) (*srcPackage, error) {
	if p, ok := l.pkgs[path]; ok {
		return p, nil
	}
	lp, ok := l.listed[path]
	if !ok {
		return nil, fmt.Errorf("%s: not listed", path)
	}
	p := &srcPackage{path: path, info: &types.Info{
		Types:      map[ast.Expr]types.TypeAndValue{},
		Defs:       map[*ast.Ident]types.Object{},
		Uses:       map[*ast.Ident]types.Object{},
		Selections: map[*ast.SelectorExpr]*types.Selection{},
	}}
	for _, name := range lp.goFiles {
		f, err := parser.ParseFile(l.fset, filepath.Join(lp.dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		p.files = append(p.files, f)
	}
	conf := types.Config{Importer: l}
	tp, err := conf.Check(path, l.fset, p.files, p.info)
	if err != nil {
		return nil, fmt.Errorf("type-check %s: %w", path, err)
	}
	p.types = tp
	l.pkgs[path] = p
	return p, nil
}

// goList lists the packages of the process commands and everything they
// import, with export data, from the repository's root (go.work).
func goList(root string, commands []string) (map[string]listedPackage, error) {
	args := []string{"list", "-deps", "-export", "-f", "{{.ImportPath}}\t{{.Dir}}\t{{.Export}}\t{{join .GoFiles \" \"}}\t{{join .Deps \" \"}}"}
	for _, c := range commands {
		args = append(args, "./"+c)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %v: %s", err, stderr.String())
	}
	listed := map[string]listedPackage{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 5 {
			return nil, fmt.Errorf("go list: unexpected line %q", sc.Text())
		}
		listed[f[0]] = listedPackage{dir: f[1], export: f[2], goFiles: strings.Fields(f[3]), deps: strings.Fields(f[4])}
	}
	return listed, sc.Err()
}

// site is an expression in the package it is written in.
type site struct {
	pkg  *srcPackage
	expr ast.Expr
}

// param is a function's parameter by position.
type param struct {
	fn  *types.Func
	idx int
}

// kafkaSink is a kafka-go literal naming a topic.
type kafkaSink struct {
	pkg          *srcPackage
	pos          token.Pos
	consume      bool
	topic, group ast.Expr
}

// callSite is a call and the package it is written in.
type callSite struct {
	pkg  *srcPackage
	call *ast.CallExpr
}

// decl is a top-level declaration of a package of the repository: a
// function or method, a type, or a package-level variable's initializer.
type decl struct {
	pkg *srcPackage
	// refs are the functions and named types its code names.
	refs []types.Object
	// What its code does: gRPC calls and registrations, Kafka
	// literals, calls, and writes to variables and fields.
	rpcs    []rpcCall // without the process
	servers []string
	sinks   []kafkaSink
	calls   map[*types.Func][]callSite
	writes  map[*types.Var][]site
}

// flow records where values come from in a process's code: the
// arguments of every call, the values written to every struct field and
// variable.
type flow struct {
	calls  map[*types.Func][]callSite
	params map[*types.Var]param
	writes map[*types.Var][]site
}

// DeriveCallGraph reads the runtime calls off the code of every process.
// Only code a process can run counts: its main, the init functions and
// package variables of what it imports, and what they name, transitively
// (a function named; a type named brings its declaration and every
// method), so a package imported for one helper does not lend the
// process the calls of the rest of it.
func DeriveCallGraph(t *testing.T) codeGraph {
	t.Helper()
	root := mustRepoRoot(t)
	procs := Processes()
	commands := slices.Sorted(maps.Keys(procs))
	listed, err := goList(root, commands)
	if err != nil {
		t.Fatal(err)
	}
	l := newLoader(listed)
	params := map[*types.Var]param{}
	funcs := map[*types.Func]*decl{}
	typeDecls := map[*types.TypeName][]*decl{} // a type's declaration and methods
	roots := map[string][]*decl{}              // by package: init functions and variables
	var mains []*decl
	load := func(path string) *srcPackage {
		p, err := l.load(path)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for path, lp := range listed {
		if !strings.HasPrefix(path, modulePrefix) || lp.dir == "" {
			continue
		}
		p := load(path)
		for _, f := range p.files {
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					fn, ok := p.info.Defs[d.Name].(*types.Func)
					if !ok {
						continue
					}
					dc := newDecl(p, d)
					funcs[fn] = dc
					addParams(params, p, d, fn)
					switch {
					case d.Recv != nil:
						if tn := recvType(fn); tn != nil {
							typeDecls[tn] = append(typeDecls[tn], dc)
						}
					case d.Name.Name == "init":
						roots[path] = append(roots[path], dc)
					case d.Name.Name == "main" && p.types.Name() == "main":
						mains = append(mains, dc)
					}
				case *ast.GenDecl:
					for _, s := range d.Specs {
						switch s := s.(type) {
						case *ast.ValueSpec:
							if d.Tok == token.VAR && !blank(s) {
								roots[path] = append(roots[path], newDecl(p, s))
							}
						case *ast.TypeSpec:
							if tn, ok := p.info.Defs[s.Name].(*types.TypeName); ok {
								typeDecls[tn] = append(typeDecls[tn], newDecl(p, s))
							}
						}
					}
				}
			}
		}
	}

	g := codeGraph{rpcs: map[rpcCall]bool{}, servers: map[string][]string{}, kafka: map[kafkaUse]bool{}}
	for _, dir := range commands {
		proc := procs[dir]
		cmd := listed[modulePrefix+dir]
		var work []*decl
		for _, m := range mains {
			if m.pkg.path == modulePrefix+dir {
				work = append(work, m)
			}
		}
		if len(work) != 1 {
			t.Fatalf("%s: %d main functions", dir, len(work))
		}
		for _, dep := range append([]string{modulePrefix + dir}, cmd.deps...) {
			work = append(work, roots[dep]...)
		}
		reached := map[*decl]bool{}
		for len(work) > 0 {
			d := work[len(work)-1]
			work = work[:len(work)-1]
			if reached[d] {
				continue
			}
			reached[d] = true
			for _, obj := range d.refs {
				switch obj := obj.(type) {
				case *types.Func:
					if fd, ok := funcs[obj]; ok {
						work = append(work, fd)
					}
				case *types.TypeName:
					work = append(work, typeDecls[obj]...)
				}
			}
		}
		fl := flow{calls: map[*types.Func][]callSite{}, params: params, writes: map[*types.Var][]site{}}
		var sinks []kafkaSink
		for d := range reached {
			for _, r := range d.rpcs {
				g.rpcs[rpcCall{proc, r.service, r.method}] = true
			}
			for _, s := range d.servers {
				if !slices.Contains(g.servers[s], proc) {
					g.servers[s] = append(g.servers[s], proc)
				}
			}
			sinks = append(sinks, d.sinks...)
			for fn, cs := range d.calls {
				fl.calls[fn] = append(fl.calls[fn], cs...)
			}
			for v, ws := range d.writes {
				fl.writes[v] = append(fl.writes[v], ws...)
			}
		}
		for _, s := range sinks {
			for _, u := range fl.kafkaUses(t, l.fset, s) {
				u.process = proc
				g.kafka[u] = true
			}
		}
	}
	return g
}

// blank reports whether every name of a variable declaration is _: a
// compile-time assertion, which runs nothing.
func blank(vs *ast.ValueSpec) bool {
	for _, n := range vs.Names {
		if n.Name != "_" {
			return false
		}
	}
	return true
}

// recvType is the named type a method is declared on.
func recvType(fn *types.Func) *types.TypeName {
	sig, ok := fn.Type().(*types.Signature)
	if !ok || sig.Recv() == nil {
		return nil
	}
	if n := namedOf(sig.Recv().Type()); n != nil {
		return n.Origin().Obj()
	}
	return nil
}

// newDecl reads what the code of node names and does.
func newDecl(p *srcPackage, node ast.Node) *decl {
	d := &decl{pkg: p, calls: map[*types.Func][]callSite{}, writes: map[*types.Var][]site{}}
	refer := func(obj types.Object) {
		switch o := obj.(type) {
		case *types.Func:
			d.refs = append(d.refs, o.Origin())
		case *types.TypeName:
			d.refs = append(d.refs, o)
		}
	}
	ast.Inspect(node, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.Ident:
			refer(p.info.Uses[n])
		case *ast.SelectorExpr:
			if sel, ok := p.info.Selections[n]; ok {
				refer(sel.Obj())
			}
		case *ast.CallExpr:
			fn, recv := callee(p, n)
			if fn == nil {
				return true
			}
			d.calls[fn] = append(d.calls[fn], callSite{p, n})
			if service, ok := protoServer(fn); ok {
				d.servers = append(d.servers, service)
			}
			if service, ok := protoClient(recv); ok {
				d.rpcs = append(d.rpcs, rpcCall{service: service, method: fn.Name()})
			}
		case *ast.AssignStmt:
			if len(n.Lhs) == len(n.Rhs) {
				for i, lhs := range n.Lhs {
					if v := written(p, lhs); v != nil {
						d.writes[v] = append(d.writes[v], site{p, n.Rhs[i]})
					}
				}
			}
		case *ast.ValueSpec:
			if len(n.Names) == len(n.Values) {
				for i, name := range n.Names {
					if v, ok := p.info.Defs[name].(*types.Var); ok {
						d.writes[v] = append(d.writes[v], site{p, n.Values[i]})
					}
				}
			}
		case *ast.CompositeLit:
			sink, isSink := kafkaLiteral(p, n)
			for _, e := range n.Elts {
				kv, ok := e.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				key, ok := kv.Key.(*ast.Ident)
				if !ok {
					continue
				}
				if v, ok := p.info.Uses[key].(*types.Var); ok && v.IsField() {
					d.writes[v] = append(d.writes[v], site{p, kv.Value})
					switch {
					case isSink && key.Name == "Topic":
						sink.topic = kv.Value
					case isSink && key.Name == "GroupID":
						sink.group = kv.Value
					}
				}
			}
			if isSink {
				d.sinks = append(d.sinks, sink)
			}
		}
		return true
	})
	return d
}

// kafkaLiteral reports whether lit is a kafka-go Writer, WriterConfig
// (a producer) or ReaderConfig (a consumer).
func kafkaLiteral(p *srcPackage, lit *ast.CompositeLit) (kafkaSink, bool) {
	named := namedOf(p.info.TypeOf(lit))
	if named == nil || named.Obj().Pkg() == nil || named.Obj().Pkg().Path() != kafkaGo {
		return kafkaSink{}, false
	}
	switch named.Obj().Name() {
	case "ReaderConfig":
		return kafkaSink{pkg: p, pos: lit.Pos(), consume: true}, true
	case "Writer", "WriterConfig":
		return kafkaSink{pkg: p, pos: lit.Pos()}, true
	}
	return kafkaSink{}, false
}

// kafkaUses are the topics (and groups) a Kafka literal of the process's
// code names, followed back to their constants.
func (fl flow) kafkaUses(t *testing.T, fset *token.FileSet, s kafkaSink) []kafkaUse {
	t.Helper()
	where := fset.Position(s.pos)
	if s.topic == nil {
		t.Errorf("%s: a kafka-go literal without a Topic: the map cannot tell which topic it uses", where)
		return nil
	}
	topics, err := fl.constants(s.pkg, s.topic, map[ast.Expr]bool{})
	if err != nil || len(topics) == 0 {
		t.Errorf("%s: the topic %s cannot be followed back to a constant (%v)", where, types.ExprString(s.topic), err)
		return nil
	}
	groups := []string{""}
	if s.consume {
		// A reader without a group reads partitions itself (the big
		// screen reads every partition from its first offset): group "".
		if s.group == nil {
			return usesOf(topics, []string{""}, true)
		}
		if groups, err = fl.constants(s.pkg, s.group, map[ast.Expr]bool{}); err != nil || len(groups) == 0 {
			t.Errorf("%s: the group %s cannot be followed back to a constant (%v)", where, types.ExprString(s.group), err)
			return nil
		}
	}
	return usesOf(topics, groups, s.consume)
}

func usesOf(topics, groups []string, consume bool) []kafkaUse {
	var out []kafkaUse
	for _, topic := range topics {
		for _, group := range groups {
			out = append(out, kafkaUse{topic: topic, group: group, consume: consume})
		}
	}
	return out
}

// addParams records the parameters of fn, declared by fd.
func addParams(params map[*types.Var]param, p *srcPackage, fd *ast.FuncDecl, fn *types.Func) {
	i := 0
	for _, field := range fd.Type.Params.List {
		for _, name := range field.Names {
			if v, ok := p.info.Defs[name].(*types.Var); ok {
				params[v] = param{fn, i}
			}
			i++
		}
		if len(field.Names) == 0 {
			i++
		}
	}
}

// callee is the function or method a call calls (nil for a conversion,
// a builtin or a function value), and the receiver type that declares
// it for a method.
func callee(p *srcPackage, call *ast.CallExpr) (*types.Func, types.Type) {
	fun := ast.Unparen(call.Fun)
	if ix, ok := fun.(*ast.IndexExpr); ok { // an explicit instantiation
		fun = ix.X
	}
	switch f := fun.(type) {
	case *ast.Ident:
		fn, _ := p.info.Uses[f].(*types.Func)
		if fn != nil {
			fn = fn.Origin()
		}
		return fn, nil
	case *ast.SelectorExpr:
		if sel, ok := p.info.Selections[f]; ok {
			fn, _ := sel.Obj().(*types.Func)
			if fn == nil || sel.Kind() != types.MethodVal {
				return nil, nil
			}
			// The type that declares the method, not the one it is
			// called on: a method promoted from an embedded generated
			// client is that client's RPC, and a type's own method of
			// the same name (a wrapper's) is not.
			return fn.Origin(), fn.Signature().Recv().Type()
		}
		fn, _ := p.info.Uses[f.Sel].(*types.Func)
		if fn != nil {
			fn = fn.Origin()
		}
		return fn, nil
	}
	return nil, nil
}

// written is the variable or struct field an assignment's left side
// writes.
func written(p *srcPackage, lhs ast.Expr) *types.Var {
	switch e := ast.Unparen(lhs).(type) {
	case *ast.Ident:
		if v, ok := p.info.Defs[e].(*types.Var); ok {
			return v
		}
		v, _ := p.info.Uses[e].(*types.Var)
		return v
	case *ast.SelectorExpr:
		if sel, ok := p.info.Selections[e]; ok && sel.Kind() == types.FieldVal {
			v, _ := sel.Obj().(*types.Var)
			return v
		}
	}
	return nil
}

// namedOf is t's named type, through a pointer.
func namedOf(t types.Type) *types.Named {
	if ptr, ok := t.(*types.Pointer); ok {
		t = ptr.Elem()
	}
	n, _ := t.(*types.Named)
	return n
}

var (
	protoClientName = regexp.MustCompile(`^(\w+Service)Client$`)
	protoServerFunc = regexp.MustCompile(`^Register(\w+Service)Server$`)
)

// isProto reports whether pkg is a package of proto/.
func isProto(pkg *types.Package) bool {
	return pkg != nil && strings.HasPrefix(pkg.Path(), modulePrefix+"proto/")
}

// protoClient is the gRPC service whose generated client recv is.
func protoClient(recv types.Type) (string, bool) {
	if recv == nil {
		return "", false
	}
	n := namedOf(recv)
	if n == nil || !isProto(n.Obj().Pkg()) {
		return "", false
	}
	if _, ok := n.Underlying().(*types.Interface); !ok {
		return "", false
	}
	m := protoClientName.FindStringSubmatch(n.Obj().Name())
	if m == nil {
		return "", false
	}
	return m[1], true
}

// protoServer is the gRPC service fn registers, when it is a generated
// Register<Service>Server.
func protoServer(fn *types.Func) (string, bool) {
	if !isProto(fn.Pkg()) {
		return "", false
	}
	m := protoServerFunc.FindStringSubmatch(fn.Name())
	if m == nil {
		return "", false
	}
	return m[1], true
}

// constants follows e back to the constant strings it can hold: through
// the arguments of every call of a parameter's function, the values
// written to a field or variable. An expression it cannot follow is an
// error, so that a new way of naming a topic is noticed rather than
// missed.
func (fl flow) constants(p *srcPackage, e ast.Expr, seen map[ast.Expr]bool) ([]string, error) {
	if seen[e] {
		return nil, nil
	}
	seen[e] = true
	if tv, ok := p.info.Types[e]; ok && tv.Value != nil && tv.Value.Kind() == constant.String {
		return []string{constant.StringVal(tv.Value)}, nil
	}
	var from []site
	switch x := ast.Unparen(e).(type) {
	case *ast.Ident:
		v, ok := p.info.Uses[x].(*types.Var)
		if !ok {
			return nil, fmt.Errorf("%s is not a variable", x.Name)
		}
		if pa, ok := fl.params[v]; ok {
			for _, c := range fl.calls[pa.fn] {
				if pa.idx < len(c.call.Args) {
					from = append(from, site{c.pkg, c.call.Args[pa.idx]})
				}
			}
		}
		from = append(from, fl.writes[v]...)
	case *ast.SelectorExpr:
		sel, ok := p.info.Selections[x]
		if !ok || sel.Kind() != types.FieldVal {
			return nil, fmt.Errorf("%s is not a field", types.ExprString(x))
		}
		from = fl.writes[sel.Obj().(*types.Var)]
	case *ast.CallExpr:
		// shadow.Topic(ctx, t) and kafka.Group(ctx, g) name the twin of t
		// (g) that pressure-test traffic uses; the map draws the real one
		// (docs/pressure-test.md).
		fun, ok := ast.Unparen(x.Fun).(*ast.SelectorExpr)
		if !ok || len(x.Args) != 2 {
			return nil, fmt.Errorf("cannot follow %s", types.ExprString(e))
		}
		f, ok := p.info.Uses[fun.Sel].(*types.Func)
		if !ok || (f.FullName() != modulePrefix+"platform/shadow.Topic" && f.FullName() != modulePrefix+"platform/kafka.Group") {
			return nil, fmt.Errorf("cannot follow %s", types.ExprString(e))
		}
		from = []site{{p, x.Args[1]}}
	case *ast.BinaryExpr:
		// topic + shadow.TopicSuffix: the shadow twin of topic, as above.
		tv, ok := p.info.Types[x.Y]
		if !ok || tv.Value == nil || x.Op != token.ADD || constant.StringVal(tv.Value) != ".shadow" {
			return nil, fmt.Errorf("cannot follow %s", types.ExprString(e))
		}
		from = []site{{p, x.X}}
	default:
		return nil, fmt.Errorf("cannot follow %s", types.ExprString(e))
	}
	var out []string
	for _, s := range from {
		o, err := fl.constants(s.pkg, s.expr, seen)
		if err != nil {
			return nil, err
		}
		out = append(out, o...)
	}
	return out, nil
}

// protoServices are the gRPC services the .proto files of proto/
// declare, with their methods, by service name.
func protoServices(t *testing.T, root string) map[string][]string {
	t.Helper()
	files := repoFiles(t, filepath.Join(root, "proto"), func(name string) bool { return strings.HasSuffix(name, ".proto") })
	service := regexp.MustCompile(`(?m)^service\s+(\w+)\s*\{`)
	rpc := regexp.MustCompile(`^\s*rpc\s+(\w+)\s*\(`)
	out := map[string][]string{}
	for _, path := range files {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		current := ""
		for _, line := range strings.Split(string(raw), "\n") {
			if m := service.FindStringSubmatch(line); m != nil {
				current = m[1]
				out[current] = []string{}
				continue
			}
			if m := rpc.FindStringSubmatch(line); m != nil {
				if current == "" {
					t.Fatalf("%s: rpc %s outside a service", path, m[1])
				}
				out[current] = append(out[current], m[1])
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("proto/ declares no service")
	}
	return out
}
