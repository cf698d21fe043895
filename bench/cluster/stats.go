package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// usage is CPU time used so far by the PostgreSQL server (postmaster, its
// exited children and its live backends) and by this process.
type usage struct {
	server, self time.Duration
}

// clockTick is the unit of /proc/<pid>/stat's times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

func usageNow(serverPid int) usage {
	var u usage
	if serverPid > 0 {
		u.server = procCPU(serverPid, true)
		kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", serverPid, serverPid))
		for _, f := range strings.Fields(string(kids)) {
			if pid, err := strconv.Atoi(f); err == nil {
				u.server += procCPU(pid, false)
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		u.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return u
}

// procCPU reads a process's user and system time (with its waited-for
// children's when children is set).
func procCPU(pid int, children bool) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return 0
	}
	// Field N of the file is f[N-3]: utime 14, stime 15, cutime 16,
	// cstime 17.
	idx := []int{11, 12}
	if children {
		idx = append(idx, 13, 14)
	}
	n := 0
	for _, k := range idx {
		v, _ := strconv.Atoi(f[k])
		n += v
	}
	return time.Duration(n) * clockTick
}

// resetStats empties pg_stat_statements and returns the server's WAL
// insert position, from which printStats counts the WAL written ("" when
// pg_walinspect, which reads it, is not installed).
func resetStats(url string) (walFrom string, err error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		return "", fmt.Errorf("pg_stat_statements: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_stat_statements_reset()"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_walinspect"); err != nil {
		return "", nil // no WAL figures
	}
	err = conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&walFrom)
	return walFrom, err
}

// printWork prints what the server did per delivery since resetStats:
// statements executed (those run inside others, by functions and
// triggers, included), shared buffers they touched, and the WAL records
// and bytes the whole server wrote from walFrom (none when walFrom is "").
func printWork(ctx context.Context, conn *pgx.Conn, walFrom string, deliveries int) error {
	var calls, hits int64
	if err := conn.QueryRow(ctx, `SELECT coalesce(sum(s.calls), 0)::bigint, coalesce(sum(s.shared_blks_hit), 0)::bigint
		FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
		WHERE d.datname = current_database() AND s.query NOT LIKE '%pg_stat_statements%'`).Scan(&calls, &hits); err != nil {
		return err
	}
	per := func(n int64) float64 { return float64(n) / float64(deliveries) }
	line := fmt.Sprintf("  per delivery: %.2f statements, %.0f buffer hits", per(calls), per(hits))
	if walFrom != "" {
		// pg_walinspect reads flushed WAL only: wait for the WAL writer.
		var to string
		if err := conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&to); err != nil {
			return err
		}
		for range 200 {
			var flushed bool
			if err := conn.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn", to).Scan(&flushed); err != nil {
				return err
			}
			if flushed {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		var records, bytes int64
		if err := conn.QueryRow(ctx, `SELECT coalesce(sum(count), 0)::bigint, coalesce(sum(combined_size), 0)::bigint
			FROM pg_get_wal_stats($1::pg_lsn, $2::pg_lsn)`, walFrom, to).Scan(&records, &bytes); err != nil {
			return err
		}
		line += fmt.Sprintf(", WAL %.1f records, %.0f bytes", per(records), per(bytes))
	}
	fmt.Println(line)
	return nil
}

// printStats prints CPU per delivery between a and b, the server's work per
// delivery (printWork) and the statements of the database at url by total
// execution time.
func printStats(url, walFrom string, a, b usage, deliveries int) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	per := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(deliveries) }
	fmt.Printf("  cpu per delivery: server %.3f ms, bench %.3f ms\n", per(b.server-a.server), per(b.self-a.self))
	if err := printWork(ctx, conn, walFrom, deliveries); err != nil {
		return err
	}
	rows, err := conn.Query(ctx, `SELECT s.calls, s.total_exec_time, s.rows, regexp_replace(left(s.query, 400), '\s+', ' ', 'g')
		FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
		WHERE d.datname = current_database() ORDER BY s.total_exec_time DESC LIMIT 10`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var calls, nrows int64
		var total float64
		var q string
		if err := rows.Scan(&calls, &total, &nrows, &q); err != nil {
			return err
		}
		fmt.Printf("  %8d calls %9.0f ms %9d rows  %s\n", calls, total, nrows, trimQuery(q))
	}
	return rows.Err()
}

func trimQuery(q string) string {
	q = strings.TrimSpace(q)
	if len(q) > 110 {
		q = q[:110]
	}
	return q
}

// waitSampler counts, every few milliseconds while a row runs, what the
// database's active backends are doing (wait event, or running on CPU),
// per statement: where a delivery's time goes besides the server's CPU.
type waitSampler struct {
	stop chan struct{}
	done chan map[string]int
}

// sampleWaits starts a sampler of the database at url.
func sampleWaits(url string) (*waitSampler, error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	w := &waitSampler{stop: make(chan struct{}), done: make(chan map[string]int, 1)}
	go func() {
		defer conn.Close(ctx)
		counts := map[string]int{}
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				w.done <- counts
				return
			case <-t.C:
			}
			rows, err := conn.Query(ctx, `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), left(regexp_replace(query, '\s+', ' ', 'g'), 60)
				FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()`)
			if err != nil {
				continue
			}
			for rows.Next() {
				var ev, q string
				if rows.Scan(&ev, &q) == nil {
					counts[fmt.Sprintf("%-28s %s", ev, trimQuery(q))]++
				}
			}
			rows.Close()
		}
	}()
	return w, nil
}

// print stops the sampler and prints the most frequent states.
func (w *waitSampler) print() {
	close(w.stop)
	counts := <-w.done
	type kv struct {
		k string
		n int
	}
	var all []kv
	for k, n := range counts {
		all = append(all, kv{k, n})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n })
	for i, e := range all {
		if i == 12 {
			break
		}
		fmt.Printf("  %6d samples  %s\n", e.n, e.k)
	}
}
