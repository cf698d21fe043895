#!/usr/bin/env bash
# Proxy throughput with tracing off, against the same proxy built from a
# baseline revision (default: main), in one run on loopback; the span export
# on (every span sampled, batched to a discarding exporter) for scale.
# Rounds alternate baseline and candidate so drift hits both; the spread
# between the baseline's own rounds is the noise.
#
#   bench/proxy/tracing.sh                     # BASE=main ROUNDS=3 DURATION=5s CONNS=32
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BASE=${BASE:-main}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-32}
DURATION=${DURATION:-5s}
P_UP=18180 P_BASE=18181 P_OFF=18182 P_ON=18183

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
WORK=$(mktemp -d /tmp/rsw-bench-trace.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "building $BASE and the working tree..." >&2
mkdir -p "$WORK/base"
git -C "$ROOT" archive "$BASE" | tar -x -C "$WORK/base"
(cd "$WORK/base" && go build -o "$WORK/base-bin/" ./bench/proxy/rswproxy)
(cd "$ROOT" && go build -o "$WORK/bin/" ./bench/proxy/rswproxy ./bench/proxy/upstream)

start() { "$@" >/dev/null 2>&1 & PIDS+=("$!"); }
start "$WORK/bin/upstream" -listen 127.0.0.1:$P_UP
start "$WORK/base-bin/rswproxy" -quiet -listen 127.0.0.1:$P_BASE -upstream http://127.0.0.1:$P_UP
start "$WORK/bin/rswproxy" -quiet -listen 127.0.0.1:$P_OFF -upstream http://127.0.0.1:$P_UP
start "$WORK/bin/rswproxy" -quiet -trace -listen 127.0.0.1:$P_ON -upstream http://127.0.0.1:$P_UP
for p in $P_UP $P_BASE $P_OFF $P_ON; do
	for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$p/" && break; sleep 0.1; done
done

rps() { wrk -t2 -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$1/" | awk '/^Requests\/sec/ {print $2}'; }
declare -a B OFF ON
for p in $P_BASE $P_OFF $P_ON; do wrk -t2 -c"$CONNS" -d2s "http://127.0.0.1:$p/" >/dev/null; done # warm-up
for r in $(seq "$ROUNDS"); do
	echo "round $r..." >&2
	B+=("$(rps $P_BASE)"); OFF+=("$(rps $P_OFF)"); ON+=("$(rps $P_ON)")
done
stats() { printf '%s\n' "$@" | awk '{s+=$1; if (min==""||$1<min) min=$1; if ($1>max) max=$1} END {printf "%.0f %.0f %.0f", s/NR, min, max}'; }
read -r bm bmin bmax <<<"$(stats "${B[@]}")"
read -r om omin omax <<<"$(stats "${OFF[@]}")"
read -r nm nmin nmax <<<"$(stats "${ON[@]}")"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ printf "%.3f", a/b }'; }
echo "Load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs; wrk -t2 -c$CONNS -d$DURATION x $ROUNDS rounds, 1 KiB response, no access log"
echo
echo "| proxy | mean req/s | min | max | vs $BASE |"
echo "|---|---:|---:|---:|---:|"
echo "| $BASE (baseline) | $bm | $bmin | $bmax | 1.000 |"
echo "| this tree, tracing off | $om | $omin | $omax | $(ratio "$om" "$bm") |"
echo "| this tree, spans exported | $nm | $nmin | $nmax | $(ratio "$nm" "$bm") |"
echo
echo "Noise: the baseline's own rounds span $(ratio "$bmin" "$bm")–$(ratio "$bmax" "$bm") of its mean."
