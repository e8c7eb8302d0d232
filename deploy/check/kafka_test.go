package check

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/flashsale/flashsale/platform/config"
	pkafka "github.com/flashsale/flashsale/platform/kafka"
)

// checkDurability holds the environment of a service that reads
// FLASHSALE_KAFKA_BROKERS to the production durability of its topics
// (docs/async-orders.md): the file says it in so many words, asks for
// min.insync.replicas of at least two with a replica to spare, so one
// broker may fail without an acknowledged order being lost or writes
// stopping, and asks for no more replicas than brokers listed.
func checkDurability(env map[string]string, reads []string) []string {
	if !slices.Contains(reads, "FLASHSALE_KAFKA_BROKERS") {
		return nil
	}
	var problems []string
	for _, name := range []string{"FLASHSALE_KAFKA_REPLICATION", "FLASHSALE_KAFKA_MIN_INSYNC_REPLICAS"} {
		if !slices.Contains(reads, name) {
			problems = append(problems, fmt.Sprintf("reads FLASHSALE_KAFKA_BROKERS but never %s: its topics' durability is not its to choose", name))
		} else if env[name] == "" {
			problems = append(problems, fmt.Sprintf("%s is not set: the file should say the durability it runs with", name))
		}
	}
	e := config.FromMap(env)
	d := pkafka.DurabilityFromEnv(e)
	if err := e.Err(); err != nil {
		return append(problems, err.Error())
	}
	if d.MinInsync < 2 || d.Replication <= d.MinInsync {
		problems = append(problems, fmt.Sprintf("replication %d, min.insync.replicas %d: want at least 2 in sync and a replica to spare (3 and 2)", d.Replication, d.MinInsync))
	}
	brokers, err := Endpoints("FLASHSALE_KAFKA_BROKERS", env["FLASHSALE_KAFKA_BROKERS"])
	if err != nil {
		return append(problems, err.Error())
	}
	if d.Replication > len(brokers) {
		problems = append(problems, fmt.Sprintf("replication %d over the %d brokers of FLASHSALE_KAFKA_BROKERS", d.Replication, len(brokers)))
	}
	return problems
}

// Wherever a service makes Kafka topics, compose and Kubernetes in
// production run it with the production durability. (The dev overlay's
// one broker holds one copy: TestK8sDevKafkaFitsItsBroker.)
func TestKafkaDurabilityIsSetWhereTopicsAreMade(t *testing.T) {
	var checked []string
	_, f := MustCompose(t)
	for _, g := range goServices(t, f) {
		reads, _ := g.bin.Reads(g.s.Environment)
		for _, p := range checkDurability(g.s.Environment, reads) {
			t.Errorf("compose %s: %s", g.name, p)
		}
		if slices.Contains(reads, "FLASHSALE_KAFKA_BROKERS") {
			checked = append(checked, "compose "+g.name)
		}
	}
	for _, r := range mustK8sRuns(t, MustManifests(t, "prod")) {
		for _, p := range checkDurability(r.env, r.reads) {
			t.Errorf("k8s %s: %s", r.workload, p)
		}
		if slices.Contains(r.reads, "FLASHSALE_KAFKA_BROKERS") {
			checked = append(checked, "k8s "+r.workload)
		}
	}
	// Order makes orders.placed: if it stopped reading the brokers, the
	// check above would hold nothing.
	for _, want := range []string{"compose order", "k8s order"} {
		if !slices.Contains(checked, want) {
			t.Errorf("%s does not read FLASHSALE_KAFKA_BROKERS; checked %v", want, checked)
		}
	}
}

// The compose Kafka brokers form one KRaft cluster: every broker is a
// voter of the quorum under its own node id, advertises its own name,
// keeps its own volume and shares the cluster id; the internal topics
// (offsets, transactions) fit the brokers with a replica to spare.
func TestComposeKafkaQuorum(t *testing.T) {
	_, f := MustCompose(t)
	brokers := map[string]composeService{}
	for name, s := range f.Services {
		if strings.Contains(s.Environment["KAFKA_PROCESS_ROLES"], "broker") {
			brokers[name] = s
		}
	}
	if len(brokers) < 3 {
		t.Fatalf("%d Kafka brokers, want at least 3 for three copies of each order event", len(brokers))
	}
	var voters []string
	ids, clusters, volumes := map[string]string{}, map[string]bool{}, map[string]string{}
	for name, s := range brokers {
		env := s.Environment
		id := env["KAFKA_NODE_ID"]
		if other, dup := ids[id]; dup {
			t.Errorf("%s and %s share KAFKA_NODE_ID %q", name, other, id)
		}
		ids[id] = name
		voters = append(voters, fmt.Sprintf("%s@%s:9093", id, name))
		if got, want := env["KAFKA_ADVERTISED_LISTENERS"], "PLAINTEXT://"+name+":9092"; got != want {
			t.Errorf("%s advertises %q, want %q", name, got, want)
		}
		clusters[env["CLUSTER_ID"]] = true
		kept := false
		for _, v := range s.Volumes {
			src, dst, _ := strings.Cut(v, ":")
			if dst == env["KAFKA_LOG_DIRS"] {
				if other, dup := volumes[src]; dup {
					t.Errorf("%s and %s keep their logs on one volume %s", name, other, src)
				}
				volumes[src], kept = name, true
			}
		}
		if !kept {
			t.Errorf("%s keeps its log (%s) on no volume: a restart would lose its copies", name, env["KAFKA_LOG_DIRS"])
		}
		for _, pair := range [][2]string{
			{"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_MIN_INSYNC_REPLICAS"},
			{"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"},
		} {
			rf, err1 := strconv.Atoi(env[pair[0]])
			isr, err2 := strconv.Atoi(env[pair[1]])
			if err1 != nil || err2 != nil || rf > len(brokers) || isr < 2 || isr >= rf {
				t.Errorf("%s: %s=%q, %s=%q: want at most %d replicas, at least 2 in sync and one to spare", name, pair[0], env[pair[0]], pair[1], env[pair[1]], len(brokers))
			}
		}
	}
	slices.Sort(voters)
	for name, s := range brokers {
		got := strings.Split(s.Environment["KAFKA_CONTROLLER_QUORUM_VOTERS"], ",")
		slices.Sort(got)
		if !slices.Equal(got, voters) {
			t.Errorf("%s: quorum voters %v, want every broker %v", name, got, voters)
		}
	}
	if len(clusters) != 1 {
		t.Errorf("the brokers name %d cluster ids, want one", len(clusters))
	}
}

// The dev overlay runs one broker: wherever a service makes topics
// there, it asks for no more copies than the brokers it lists, or
// creating orders.placed would fail.
func TestK8sDevKafkaFitsItsBroker(t *testing.T) {
	var checked []string
	for _, r := range mustK8sRuns(t, MustManifests(t, "dev")) {
		if !slices.Contains(r.reads, "FLASHSALE_KAFKA_BROKERS") {
			continue
		}
		checked = append(checked, r.workload)
		e := config.FromMap(r.env)
		d := pkafka.DurabilityFromEnv(e)
		brokers, err := Endpoints("FLASHSALE_KAFKA_BROKERS", r.env["FLASHSALE_KAFKA_BROKERS"])
		if err = errors.Join(err, e.Err()); err != nil {
			t.Errorf("%s: %v", r.workload, err)
		} else if d.Replication > len(brokers) {
			t.Errorf("%s: replication %d over the %d brokers of FLASHSALE_KAFKA_BROKERS", r.workload, d.Replication, len(brokers))
		}
	}
	if !slices.Contains(checked, "order") {
		t.Errorf("order does not read FLASHSALE_KAFKA_BROKERS in the dev overlay; checked %v", checked)
	}
}
