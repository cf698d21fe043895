#!/usr/bin/env bash
# Storage engines under the delivery engine, in one run on this machine:
# Badger (one node) against PostgreSQL (one node by default; NODES=3 runs
# three engines sharing the database), with the daemon's delivery defaults
# (MaxConcurrency 16, PerWebhookConcurrency 4), 1 KB bodies, real signing
# and a fast loopback receiver. Each engine: deliveries/s as fast as events
# can be appended, then event -> first attempt p50/p99 at 1,000 events/s.
# PostgreSQL is a throw-away cluster from the local binaries (Debian's
# postgresql package) or the server at RSWEBHOOKS_TEST_POSTGRES_URL.
# Each run repeats RUNS times (default 3). PGSTATS=1 adds, after
# PostgreSQL's throughput row, the server's and the bench's CPU per delivery,
# the server's statements, buffer hits and WAL (records, bytes) per delivery
# and the top statements of pg_stat_statements; PGWAITS=1 what its active
# backends wait on (sampled); STAGES=1 each stage's time from event to
# first attempt in PostgreSQL's latency row (see -stages); WARMUP=N sends N
# events before the latency rows' measured ones. Results in
# bench/out/cluster.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p bench/out
go build -o bench/out/cluster-bench ./bench/cluster
{
  echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(git rev-parse --short HEAD)"
  for run in $(seq "${RUNS:-3}"); do
    echo "## run $run"
    bench/out/cluster-bench -events "${EVENTS:-10000}" -rate 1000 -webhooks 1 -nodes "${NODES:-1}" ${PGSTATS:+-pgstats} ${PGWAITS:+-pgwaits} ${STAGES:+-stages} -warmup "${WARMUP:-0}" \
      ${RSWEBHOOKS_TEST_POSTGRES_URL:+-postgres-url "$RSWEBHOOKS_TEST_POSTGRES_URL"}
  done
} | tee bench/out/cluster.txt
