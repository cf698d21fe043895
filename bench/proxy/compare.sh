#!/usr/bin/env bash
# Proxy throughput of the current tree against a baseline commit, in one run:
# the same upstream, two rswebhooks proxies (bench/proxy/rswproxy built from
# each tree), wrk against one then the other (the order alternating), ROUNDS
# times, plus the upstream directly. Prints each run and the median ratio current/baseline.
#
#   bench/proxy/compare.sh main                  # ROUNDS=3 DURATION=5s CONNS=32
#   PATHS="/ /stream?n=65536" bench/proxy/compare.sh main
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BASE=${1:?usage: bench/proxy/compare.sh BASELINE-COMMIT}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-32}
P_UP=18180 P_BASE=18181 P_CUR=18182
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
WORK=$(mktemp -d /tmp/rsw-proxy-compare.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/src" "$WORK/base" "$WORK/cur"
(cd "$ROOT" && git archive "$BASE" | tar -x -C "$WORK/src")
(cd "$WORK/src" && go build -o "$WORK/base/" ./bench/proxy/rswproxy)
(cd "$ROOT" && go build -o "$WORK/cur/" ./bench/proxy/rswproxy ./bench/proxy/upstream)
start() { "$@" > >(cat >/dev/null) 2>>"$WORK/err" & PIDS+=($!); }
start "$WORK/cur/upstream" -listen 127.0.0.1:$P_UP
start "$WORK/base/rswproxy" -listen 127.0.0.1:$P_BASE -upstream http://127.0.0.1:$P_UP
start "$WORK/cur/rswproxy" -listen 127.0.0.1:$P_CUR -upstream http://127.0.0.1:$P_UP
for p in $P_UP $P_BASE $P_CUR; do
	for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$p/" && break; sleep 0.1; done
done
rps() { wrk -t2 -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$1/" | awk '/^Requests\/sec/ {print $2}'; }
echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(cd "$ROOT" && git rev-parse --short HEAD) vs $BASE, wrk -t2 -c$CONNS -d$DURATION, 1 KiB GET"
for p in $P_BASE $P_CUR; do wrk -t2 -c"$CONNS" -d2s "http://127.0.0.1:$p/" >/dev/null; done # warm-up
ratios=()
for r in $(seq "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then b=$(rps $P_BASE); c=$(rps $P_CUR); else c=$(rps $P_CUR); b=$(rps $P_BASE); fi # alternate the order
	d=$(rps $P_UP)
	ratio=$(awk -v c="$c" -v b="$b" 'BEGIN{printf "%.3f", c/b}')
	ratios+=("$ratio")
	echo "round $r: direct $d req/s, baseline $b req/s, current $c req/s, current/baseline $ratio"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {printf "median current/baseline: %s\n", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
