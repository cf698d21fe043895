#!/usr/bin/env bash
# Proxy benchmark: upstream direct vs rswebhooks proxy vs nginx vs
# httputil.ReverseProxy, all in one run on loopback. Prints a Markdown report
# (also written to $OUT, default bench/proxy/results.md).
#
#   bench/proxy/run.sh                 # defaults: wrk -t2 -c32 -d10s, 1 KiB body
#   DURATION=5s CONNS=64 bench/proxy/run.sh
#   PROFILE=1 bench/proxy/run.sh       # also a 10 s CPU profile of the proxy under wrk
#   QUICK=1 bench/proxy/run.sh         # saturation table only (no fixed rate, streaming, ticks)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
DURATION=${DURATION:-10s}
RATE=${RATE:-1000}
RATE_DURATION=${RATE_DURATION:-10s}
STREAM_BYTES=${STREAM_BYTES:-1073741824}
OUT=${OUT:-$ROOT/bench/proxy/results.md}
P_UP=18080 P_RSW=18081 P_NGINX=18082 P_HU=18083 P_PPROF=18084 P_QUIET=18085

need() { command -v "$1" >/dev/null 2>&1 || [ -x "$2" ]; }
if ! need wrk /usr/bin/wrk || ! need nginx /usr/sbin/nginx; then
	apt-get update -qq && apt-get install -y -qq wrk nginx-light >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

WORK=$(mktemp -d /tmp/rsw-bench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
echo "building..." >&2
(cd "$ROOT" && go build -o "$WORK/bin/" ./bench/proxy/...)

start() { # name cmd... ; sets PID (not run in a subshell, so cleanup sees it)
	# stdout (the access log) goes through a pipe, as to journald or a container runtime
	"${@:2}" > >(cat >/dev/null) 2>"$WORK/$1.err" &
	PID=$!
	PIDS+=("$PID")
}
wait_port() {
	for _ in $(seq 100); do
		curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
		sleep 0.1
	done
	echo "port $1 did not come up" >&2; cat "$WORK"/*.err >&2; exit 1
}

mkdir -p "$WORK/nginx/logs" "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<NGX
worker_processes auto;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
	access_log /dev/null;
	client_body_temp_path $WORK/nginx/tmp/body;
	proxy_temp_path $WORK/nginx/tmp/proxy;
	fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
	uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
	scgi_temp_path $WORK/nginx/tmp/scgi;
	upstream origin { server 127.0.0.1:$P_UP; keepalive 256; }
	server {
		listen 127.0.0.1:$P_NGINX;
		location / {
			proxy_pass http://origin;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host \$host;
			proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Proto \$scheme;
		}
	}
}
NGX

start upstream "$WORK/bin/upstream" -listen 127.0.0.1:$P_UP
UP_PID=$PID
start rswproxy "$WORK/bin/rswproxy" -listen 127.0.0.1:$P_RSW -upstream http://127.0.0.1:$P_UP -pprof 127.0.0.1:$P_PPROF
RSW_PID=$PID
start rswquiet "$WORK/bin/rswproxy" -quiet -listen 127.0.0.1:$P_QUIET -upstream http://127.0.0.1:$P_UP
start httputil "$WORK/bin/httputilproxy" -listen 127.0.0.1:$P_HU -upstream http://127.0.0.1:$P_UP
HU_PID=$PID
start nginx "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
NGX_PID=$PID
for p in $P_UP $P_RSW $P_QUIET $P_HU $P_NGINX; do wait_port "$p"; done

declare -A RPS P50 P99 CONNS_OPENED REQS
to_ms() { # wrk latency like 812.00us / 1.23ms / 1.02s -> ms
	awk -v v="$1" 'BEGIN{ if (v ~ /us$/) {sub(/us$/,"",v); printf "%.3f", v/1000}
	else if (v ~ /ms$/) {sub(/ms$/,"",v); printf "%.3f", v}
	else if (v ~ /s$/) {sub(/s$/,"",v); printf "%.3f", v*1000} }'
}
run_wrk() { # name port
	# Counted from before the warm-up, so the figure includes filling the pool.
	curl -s -X POST "http://127.0.0.1:$P_UP/_stats/reset"
	wrk -t2 -c"$CONNS" -d2s "http://127.0.0.1:$2/" >/dev/null # warm-up
	echo "wrk $1..." >&2
	wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$2/" >"$WORK/wrk-$1.txt"
	RPS[$1]=$(awk '/^Requests\/sec/ {print $2}' "$WORK/wrk-$1.txt")
	P50[$1]=$(to_ms "$(awk '$1=="50%" {print $2}' "$WORK/wrk-$1.txt")")
	P99[$1]=$(to_ms "$(awk '$1=="99%" {print $2}' "$WORK/wrk-$1.txt")")
	CONNS_OPENED[$1]=$(( $(curl -s "http://127.0.0.1:$P_UP/_stats") - 1 )) # minus the stats request itself
	REQS[$1]=$(awk '/requests in/ {print $1}' "$WORK/wrk-$1.txt")
	if grep -q "Non-2xx\|Socket errors" "$WORK/wrk-$1.txt"; then grep "Non-2xx\|Socket errors" "$WORK/wrk-$1.txt" | sed "s/^/$1: /" >&2; fi
}
run_wrk direct $P_UP
run_wrk rswebhooks $P_RSW
run_wrk nginx $P_NGINX
run_wrk httputil $P_HU
run_wrk rswebhooks-no-access-log $P_QUIET

if [ "${PROFILE:-}" = 1 ]; then
	echo "profiling rswebhooks under wrk..." >&2
	wrk -t"$THREADS" -c"$CONNS" -d12s "http://127.0.0.1:$P_RSW/" >/dev/null &
	curl -s -o "$WORK/cpu.pprof" "http://127.0.0.1:$P_PPROF/debug/pprof/profile?seconds=10"
	wait $!
	go tool pprof -top -nodecount=40 "$WORK/bin/rswproxy" "$WORK/cpu.pprof" >"$ROOT/bench/proxy/profile.txt" 2>/dev/null || true
	echo "profile: bench/proxy/profile.txt" >&2
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ printf "%.2f", a/b }'; }
saturation() {
	echo "| target | requests/s | p50 ms | p99 ms | upstream conns opened (warm-up + run, $CONNS clients) |"
	echo "|---|---:|---:|---:|---:|"
	for n in direct rswebhooks nginx httputil rswebhooks-no-access-log; do
		echo "| $n | ${RPS[$n]} | ${P50[$n]} | ${P99[$n]} | ${CONNS_OPENED[$n]} for ${REQS[$n]} requests |"
	done
	echo
	echo "Ratios at saturation: rswebhooks/nginx = $(ratio "${RPS[rswebhooks]}" "${RPS[nginx]}"), rswebhooks/httputil = $(ratio "${RPS[rswebhooks]}" "${RPS[httputil]}"), httputil/nginx = $(ratio "${RPS[httputil]}" "${RPS[nginx]}"); without the access log: rswebhooks/nginx = $(ratio "${RPS[rswebhooks-no-access-log]}" "${RPS[nginx]}"), rswebhooks/httputil = $(ratio "${RPS[rswebhooks-no-access-log]}" "${RPS[httputil]}")"
}
if [ "${QUICK:-}" = 1 ]; then
	{
		echo "Load average at start: $LOAD. Run: $(date -u +%Y-%m-%dT%H:%M:%SZ), wrk -t$THREADS -c$CONNS -d$DURATION, 1 KiB response (QUICK: saturation only)"
		echo
		saturation
	} | tee "$OUT"
	exit 0
fi

declare -A RATE_OUT
for t in direct:$P_UP rswebhooks:$P_RSW httputil:$P_HU nginx:$P_NGINX; do
	echo "fixed rate $RATE rps ${t%%:*}..." >&2
	RATE_OUT[${t%%:*}]=$("$WORK/bin/loadgen" rate -url "http://127.0.0.1:${t##*:}/" -rps "$RATE" -d "$RATE_DURATION")
done
kv() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1==k {print $2}'; }

# Streaming: a fresh proxy process, so its peak RSS is the stream's, not wrk's.
kill "$RSW_PID" 2>/dev/null || true
wait "$RSW_PID" 2>/dev/null || true
start rswproxy2 "$WORK/bin/rswproxy" -listen 127.0.0.1:$P_RSW -upstream http://127.0.0.1:$P_UP
RSW2_PID=$PID
wait_port $P_RSW
for _ in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$P_RSW/"; done
echo "streaming $STREAM_BYTES bytes..." >&2
STREAM_CL=$("$WORK/bin/loadgen" stream -url "http://127.0.0.1:$P_RSW/stream?n=$STREAM_BYTES" -pid "$RSW2_PID")
STREAM_CH=$("$WORK/bin/loadgen" stream -url "http://127.0.0.1:$P_RSW/stream?n=$STREAM_BYTES&chunked=1" -pid "$RSW2_PID")
STREAM_DIRECT=$("$WORK/bin/loadgen" stream -url "http://127.0.0.1:$P_UP/stream?n=$STREAM_BYTES" -pid "$UP_PID")
TICKS_RSW=$("$WORK/bin/loadgen" ticks -url "http://127.0.0.1:$P_RSW/ticks" -n 40)
TICKS_DIRECT=$("$WORK/bin/loadgen" ticks -url "http://127.0.0.1:$P_UP/ticks" -n 40)

diffus() { awk -v a="$1" -v b="$2" 'BEGIN{ printf "%+.0f", a-b }'; }
{
	echo "Load average at start: $LOAD (the machine is shared; compare ratios within one run)."
	echo "Run: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, $(go version | awk '{print $3}'), $($NGINX -v 2>&1 | sed 's/.*: //'), wrk -t$THREADS -c$CONNS -d$DURATION, 1 KiB response"
	echo
	saturation
	echo
	echo "Fixed rate $RATE requests/s for $RATE_DURATION (open loop, latency from scheduled start):"
	echo
	echo "| target | p50 µs | p99 µs | added p50 µs | added p99 µs | errors |"
	echo "|---|---:|---:|---:|---:|---:|"
	for n in direct rswebhooks httputil nginx; do
		o=${RATE_OUT[$n]}
		echo "| $n | $(kv "$o" p50_us) | $(kv "$o" p99_us) | $(diffus "$(kv "$o" p50_us)" "$(kv "${RATE_OUT[direct]}" p50_us)") | $(diffus "$(kv "$o" p99_us)" "$(kv "${RATE_OUT[direct]}" p99_us)") | $(kv "$o" errors) |"
	done
	echo
	echo "Streaming $STREAM_BYTES bytes through a fresh rswebhooks process:"
	echo
	echo "| case | MB/s | proxy RSS before KiB | VmHWM after KiB | peak growth KiB |"
	echo "|---|---:|---:|---:|---:|"
	echo "| Content-Length | $(kv "$STREAM_CL" mb_s) | $(kv "$STREAM_CL" rss_before_kb) | $(kv "$STREAM_CL" hwm_after_kb) | $(kv "$STREAM_CL" hwm_growth_kb) |"
	echo "| chunked | $(kv "$STREAM_CH" mb_s) | $(kv "$STREAM_CH" rss_before_kb) | $(kv "$STREAM_CH" hwm_after_kb) | $(kv "$STREAM_CH" hwm_growth_kb) |"
	echo "| direct (no proxy) | $(kv "$STREAM_DIRECT" mb_s) | | | |"
	echo
	echo "Flushed chunks (40 lines, 25 ms apart), upstream flush → client read: rswebhooks p50 $(kv "$TICKS_RSW" p50_us) µs, max $(kv "$TICKS_RSW" max_us) µs; direct p50 $(kv "$TICKS_DIRECT" p50_us) µs, max $(kv "$TICKS_DIRECT" max_us) µs."
} | tee "$OUT"
