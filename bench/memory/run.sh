#!/usr/bin/env bash
# Memory bound of a real `rswebhooks serve` (default flags): peak RSS under
# (a) 1,000 concurrent 1 MiB uploads to a watched route, with the same load
#     at 1 KiB, and both sizes sent to the upstream directly and through a
#     plain httputil.ReverseProxy (bench/proxy/httputilproxy) as baselines;
#     the ratios of each size are printed at the end,
# (b) 10,000 idle or half-sent client connections,
# (c) an 80,000-delivery burst (10,000 events x 8 webhooks),
# each with and without the GOMEMLIMIT of the deploy examples (and the burst
# also without serve's default --soft-memory-limit), while the
# admin /healthz and a GET through the proxy are probed every 100 ms.
#
#   bench/memory/run.sh                  # DURATION=5s; results in bench/out/memory.txt
#   GOMEMLIMIT_DEPLOY=192MiB bench/memory/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p bench/out
go build -o bench/out/ ./cmd/rswebhooks ./bench/memory ./bench/proxy/httputilproxy
D=${DURATION:-5s}
LIM=${GOMEMLIMIT_DEPLOY:-192MiB}
b() { bench/out/memory -bin bench/out/rswebhooks "$@"; echo; }
{
  echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(git rev-parse --short HEAD)"
  for size in 1024 1048576; do
    b -scenario uploads -clients 1000 -size $size -duration "$D" -direct
    b -scenario uploads -clients 1000 -size $size -duration "$D" -reference bench/out/httputilproxy
    b -scenario uploads -clients 1000 -size $size -duration "$D"
  done
  b -scenario uploads -clients 1000 -size 1048576 -duration "$D" -gomemlimit "$LIM"
  b -scenario idle -conns 10000 -duration "$D"
  b -scenario deliveries -events 10000 -webhooks 8
  echo "# RSWEBHOOKS_SOFT_MEMORY_LIMIT=0 (no soft limit)"; RSWEBHOOKS_SOFT_MEMORY_LIMIT=0 b -scenario deliveries -events 10000 -webhooks 8
  b -scenario deliveries -events 10000 -webhooks 8 -gomemlimit "$LIM"
} | tee bench/out/memory.txt
# Throughput ratios of the uploads, per body size, within this run.
awk '/^scenario=uploads/ && !/GOMEMLIMIT/ { split($0, f, /size=/); split(f[2], g, " "); size = g[1]
       kind = /direct=true/ ? "direct" : /reference=true/ ? "httputil" : "rswebhooks"; next_is = kind; next }
     next_is != "" && /^requests=/ { split($0, f, /req_per_s=/); split(f[2], g, " "); rate[size, next_is] = g[1]; sizes[size] = 1; next_is = "" }
     END { for (s in sizes) if (rate[s, "direct"] > 0 && rate[s, "httputil"] > 0)
             printf "uploads size=%s rswebhooks/direct=%.2f rswebhooks/httputil=%.2f httputil/direct=%.2f\n", s,
               rate[s, "rswebhooks"] / rate[s, "direct"], rate[s, "rswebhooks"] / rate[s, "httputil"], rate[s, "httputil"] / rate[s, "direct"] }' \
  bench/out/memory.txt | sort | tee -a bench/out/memory.txt
