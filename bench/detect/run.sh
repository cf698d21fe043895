#!/usr/bin/env bash
# Detect benchmark: latency the daemon adds to a matched mutating call (event
# persisted in Badger before the response) versus an unmatched GET, against
# the simulator on loopback, open-loop at a fixed rate. Prints Markdown.
#
#   bench/detect/run.sh                          # 500 req/s in all, 2 s warm-up + 10 s
#   bench/detect/run.sh -rate 200 -duration 20s
#   bench/detect/run.sh -cpuprofile cpu.out -trace trace.out
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench' ':!docs' || echo ' (uncommitted changes)')"
exec go run ./bench/detect "$@"
