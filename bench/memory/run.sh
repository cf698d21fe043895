#!/usr/bin/env bash
# Memory bound of a real `rswebhooks serve` (default flags): peak RSS under
# (a) 1,000 concurrent 1 MiB uploads to a watched route, with the same run
#     at 1 KiB and 1 MiB sent to the upstream directly as baselines,
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
go build -o bench/out/ ./cmd/rswebhooks ./bench/memory
D=${DURATION:-5s}
LIM=${GOMEMLIMIT_DEPLOY:-192MiB}
b() { bench/out/memory -bin bench/out/rswebhooks "$@"; echo; }
{
  echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(git rev-parse --short HEAD)"
  b -scenario uploads -clients 1000 -size 1024 -duration "$D"
  b -scenario uploads -clients 1000 -size 1048576 -duration "$D" -direct
  b -scenario uploads -clients 1000 -size 1048576 -duration "$D"
  b -scenario uploads -clients 1000 -size 1048576 -duration "$D" -gomemlimit "$LIM"
  b -scenario idle -conns 10000 -duration "$D"
  b -scenario deliveries -events 10000 -webhooks 8
  echo "# RSWEBHOOKS_SOFT_MEMORY_LIMIT=0 (no soft limit)"; RSWEBHOOKS_SOFT_MEMORY_LIMIT=0 b -scenario deliveries -events 10000 -webhooks 8
  b -scenario deliveries -events 10000 -webhooks 8 -gomemlimit "$LIM"
} | tee bench/out/memory.txt
