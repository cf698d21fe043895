#!/usr/bin/env bash
# Fairness benchmark: how long another owner's notification waits for its
# first attempt while one owner's 1,000 webhooks point at a receiver that
# never answers within the run (the 30 s receiver of the goal), with the
# default pool of 16 workers; the idle row (no such load) is the baseline
# of the same run. Reports p50 and p99 in milliseconds.
#
# Usage: bench/fairness/run.sh [N]   (N notifications per row, default 500)
# Results also in bench/out/fairness.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p bench/out
n=${1:-500}
{
  echo "# $(date -u +%FT%TZ) $(nproc) cores, $(git rev-parse --short HEAD)"
  go test -run '^$' -bench BenchmarkFairness -benchtime "${n}x" -count 3 ./deliver/
} | tee bench/out/fairness.txt
