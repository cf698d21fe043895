package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// goal is issue 3's bound on the p99 latency added to a matched mutating call.
const goal = 5 * time.Millisecond

var quantiles = []struct {
	name string
	q    float64
}{{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99}, {"max", 1}}

// dist is one case's measured latencies, sorted.
type dist struct {
	n, failed             int
	firstFailure          string
	latency, service, lag []time.Duration
	latencyAtQ            []time.Duration // at quantiles
	serviceAtQ            []time.Duration
	sendLagP99            time.Duration
}

// at is the nearest-rank quantile of sorted d.
func at(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(d)))) - 1
	return d[min(max(i, 0), len(d)-1)]
}

func summarize(samples []sample, kind int) dist {
	var d dist
	for _, s := range samples {
		if s.kind != kind || s.warm {
			continue
		}
		d.n++
		if s.err != nil || s.status/100 != 2 {
			d.failed++
			if d.firstFailure == "" {
				d.firstFailure = fmt.Sprintf("status %d, err %v", s.status, s.err)
			}
			continue
		}
		d.latency = append(d.latency, s.latency)
		d.service = append(d.service, s.service)
		d.lag = append(d.lag, s.latency-s.service)
	}
	slices.Sort(d.latency)
	slices.Sort(d.service)
	slices.Sort(d.lag)
	for _, q := range quantiles {
		d.latencyAtQ = append(d.latencyAtQ, at(d.latency, q.q))
		d.serviceAtQ = append(d.serviceAtQ, at(d.service, q.q))
	}
	d.sendLagP99 = at(d.lag, 0.99)
	return d
}

func us(d time.Duration) string { return fmt.Sprintf("%d", d.Microseconds()) }

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

// report prints the Markdown tables and the correctness check; it returns an
// error when the store does not hold exactly the acknowledged events.
func report(w io.Writer, cfg config, samples []sample, elapsed time.Duration, lost float64, stored map[string]int) error {
	var ds [nCases]dist
	for k := range ds {
		ds[k] = summarize(samples, k)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(w, "%s, GOMAXPROCS %d, %d CPUs, load average %s; %d req/s in all (%d per case), %v measured after %v warm-up, schedule took %v\n\n",
		runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "),
		cfg.rate, cfg.rate/nCases, cfg.duration, cfg.warmup, elapsed.Round(time.Millisecond))

	fmt.Fprintln(w, "Latency from the scheduled send time (µs; open loop, so queueing counts):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| case | n | failed | p50 | p90 | p99 | max | service p50 | service p99 |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for k, d := range ds {
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s | %s | %s | %s |\n", caseNames[k], d.n, d.failed,
			us(d.latencyAtQ[0]), us(d.latencyAtQ[1]), us(d.latencyAtQ[2]), us(d.latencyAtQ[3]),
			us(d.serviceAtQ[0]), us(d.serviceAtQ[2]))
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "Added by the proxy (difference of the percentiles; µs and ratio proxied/direct):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| | POST added (b−a) | b/a | GET added (d−c) | d/c | detection + persistence (b−a)−(d−c) | (b−a)/(d−c) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	a, b, c, d := ds[postDirect], ds[postProxy], ds[getDirect], ds[getProxy]
	for i, q := range quantiles {
		post := b.latencyAtQ[i] - a.latencyAtQ[i]
		get := d.latencyAtQ[i] - c.latencyAtQ[i]
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", q.name,
			us(post), ratio(b.latencyAtQ[i], a.latencyAtQ[i]),
			us(get), ratio(d.latencyAtQ[i], c.latencyAtQ[i]),
			us(post-get), ratio(post, get))
	}
	fmt.Fprintln(w)
	added99 := b.latencyAtQ[2] - a.latencyAtQ[2]
	verdict := "met"
	if added99 >= goal {
		verdict = "MISSED"
	}
	fmt.Fprintf(w, "Goal p99 added to the persisted POST < %v: %s (%.2f ms).\n", goal, verdict, float64(added99)/float64(time.Millisecond))
	var lags []string
	for k, d := range ds {
		lags = append(lags, fmt.Sprintf("%c %d", 'a'+k, d.sendLagP99.Microseconds()))
	}
	fmt.Fprintf(w, "Load-generator send lag p99 (scheduled → handed to the client), µs: %s.\n", strings.Join(lags, ", "))
	for k, d := range ds {
		if d.failed > 0 {
			fmt.Fprintf(w, "%s: %d failed, first: %s\n", caseNames[k], d.failed, d.firstFailure)
		}
	}

	return verify(w, samples, lost, stored)
}

// verify checks the store against what the clients saw: one
// categories/Created event per 2xx proxied POST (warm-up included), with the
// id the response carried, and nothing else. Only proxied POSTs the client
// abandoned (timeout) may add events, at most one each.
func verify(w io.Writer, samples []sample, lost float64, stored map[string]int) error {
	want := map[string]int{}
	acked, abandoned := 0, 0
	for _, s := range samples {
		switch {
		case s.kind != postProxy:
		case s.err == nil && s.status/100 == 2:
			acked++
			want[rswebhooks.FilterCategories+"/"+rswebhooks.EventCreated+"/"+s.postedID]++
		case s.err != nil:
			abandoned++
		}
	}
	total := 0
	for _, n := range stored {
		total += n
	}
	var problems []string
	if total < acked || total > acked+abandoned {
		problems = append(problems, fmt.Sprintf("%d events stored for %d acknowledged POSTs (%d abandoned)", total, acked, abandoned))
	}
	missing, dup, unknown := 0, 0, 0
	for k := range want {
		if stored[k] == 0 {
			missing++
		}
	}
	for k, n := range stored {
		dup += n - 1
		if want[k] == 0 {
			unknown++
		}
	}
	if missing > 0 || dup > 0 || unknown > abandoned {
		problems = append(problems, fmt.Sprintf("%d acknowledged POSTs have no event with their id, %d events are duplicates, %d events match no acknowledged POST (%d abandoned)",
			missing, dup, unknown, abandoned))
	}
	if lost != 0 {
		problems = append(problems, fmt.Sprintf("rswebhooks_events_lost_total = %v", lost))
	}
	if len(problems) > 0 {
		fmt.Fprintf(w, "\nCorrectness: FAILED: %s.\n", strings.Join(problems, "; "))
		return errors.New("store does not match the acknowledged POSTs")
	}
	if abandoned > 0 {
		fmt.Fprintf(w, "\nCorrectness: the reopened store holds an event for each of the %d acknowledged proxied POSTs, with the id its response carried, plus %d of the %d POSTs the client abandoned; events lost: 0.\n", acked, total-acked, abandoned)
		return nil
	}
	fmt.Fprintf(w, "\nCorrectness: the reopened store holds %d events = %d acknowledged proxied POSTs (warm-up included), each with the id its response carried; events lost: 0.\n", total, acked)
	return nil
}
