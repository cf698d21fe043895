// Command loadgen is the benchmark's small load tool for what wrk cannot do:
//
//	loadgen rate   -url U -rps 1000 -d 10s   fixed-rate (open loop) latency p50/p99
//	loadgen stream -url U -pid PID            download once, report MB/s and the
//	                                          proxy's RSS (VmRSS/VmHWM) before/after
//	loadgen ticks  -url U -n 40 -every 25ms   latency of each flushed chunk
//
// Output is one line of key=value pairs for run.sh to parse.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: loadgen rate|stream|ticks [flags]")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	u := fs.String("url", "", "target URL")
	rps := fs.Int("rps", 1000, "requests per second (rate)")
	d := fs.Duration("d", 10*time.Second, "duration (rate)")
	pid := fs.Int("pid", 0, "process whose memory to report (stream)")
	n := fs.Int("n", 40, "chunks (ticks)")
	_ = fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "rate":
		rate(*u, *rps, *d)
	case "stream":
		stream(*u, *pid)
	case "ticks":
		ticks(*u, *n)
	default:
		log.Fatalf("unknown command %q", os.Args[1])
	}
}

func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, DisableCompression: true}}
}

func pct(v []time.Duration, p float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[min(len(v)-1, int(float64(len(v))*p))]
}

func us(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e3, 'f', 0, 64) }

// rate sends requests on a fixed schedule; latency counts from the scheduled
// start, so a stalled server cannot hide queueing (no coordinated omission).
func rate(u string, rps int, d time.Duration) {
	c := newClient()
	interval := time.Second / time.Duration(rps)
	total := int(d / interval)
	lat := make([]time.Duration, total)
	var mu sync.Mutex
	errs := 0
	var wg sync.WaitGroup
	start := time.Now()
	for i := range total {
		sched := start.Add(time.Duration(i) * interval)
		if w := time.Until(sched); w > 0 {
			time.Sleep(w)
		}
		wg.Go(func() {
			resp, err := c.Get(u)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			l := time.Since(sched)
			mu.Lock()
			lat[i] = l
			if err != nil {
				errs++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	fmt.Printf("requests=%d errors=%d p50_us=%s p99_us=%s max_us=%s\n", total, errs, us(pct(lat, .5)), us(pct(lat, .99)), us(pct(lat, 1)))
}

func memKB(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, key+":"); ok {
			v, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return v
		}
	}
	return -1
}

func stream(u string, pid int) {
	rssBefore, hwmBefore := memKB(pid, "VmRSS"), memKB(pid, "VmHWM")
	start := time.Now()
	resp, err := newClient().Get(u)
	if err != nil {
		log.Fatal(err)
	}
	// Sample RSS while the body flows, as a cross-check of VmHWM.
	ctx, cancel := context.WithCancel(context.Background())
	peak := make(chan int64)
	go func() {
		var p int64
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				peak <- p
				return
			case <-t.C:
				p = max(p, memKB(pid, "VmRSS"))
			}
		}
	}()
	nb, err := io.CopyBuffer(io.Discard, resp.Body, make([]byte, 256<<10))
	resp.Body.Close()
	el := time.Since(start)
	cancel()
	sampled := <-peak
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("bytes=%d seconds=%.2f mb_s=%.0f rss_before_kb=%d hwm_before_kb=%d hwm_after_kb=%d sampled_peak_rss_kb=%d hwm_growth_kb=%d\n",
		nb, el.Seconds(), float64(nb)/el.Seconds()/1e6, rssBefore, hwmBefore, memKB(pid, "VmHWM"), sampled, memKB(pid, "VmHWM")-rssBefore)
}

func ticks(u string, n int) {
	resp, err := newClient().Get(fmt.Sprintf("%s?n=%d&every=25ms", u, n))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	var lat []time.Duration
	for {
		l, err := br.ReadString('\n')
		now := time.Now()
		if err != nil {
			break
		}
		sent, perr := strconv.ParseInt(strings.TrimSpace(l), 10, 64)
		if perr == nil {
			lat = append(lat, now.Sub(time.Unix(0, sent)))
		}
	}
	fmt.Printf("chunks=%d p50_us=%s max_us=%s\n", len(lat), us(pct(lat, .5)), us(pct(lat, 1)))
}
