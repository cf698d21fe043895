#!/usr/bin/env bash
# Delivery benchmarks with the daemon's defaults (MaxConcurrency 16,
# PerWebhookConcurrency 4): sustained throughput to a fast loopback receiver
# (1 KB bodies, durable Badger queue, real signing) with 8 webhooks and with
# one, and event -> first attempt latency at a fixed 1,000 events/s, each
# with peak RSS. Each row runs RUNS times (default 3).
#
# Usage: bench/deliver/run.sh [baseline-commit]
#   With a commit, a build of it (git worktree in a temporary directory) runs
#   the same rows first, interleaved run by run, as the baseline.
# Results also in bench/out/deliver.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p bench/out
go build -o bench/out/deliver-bench ./bench/deliver
bins=(bench/out/deliver-bench)
if [ $# -ge 1 ]; then
  old=$(mktemp -d)
  trap 'git worktree remove --force "$old"' EXIT
  git worktree add -q --detach "$old" "$1"
  (cd "$old" && go build -o "$OLDPWD/bench/out/deliver-bench-base" ./bench/deliver)
  bins=(bench/out/deliver-bench-base bench/out/deliver-bench)
fi
rows=(
  "-mode throughput -events 10000 -webhooks 8"
  "-mode throughput -events 40000 -webhooks 1"
  "-mode latency -events 10000 -webhooks 1 -rate 1000"
)
{
  echo "# $(date -u +%FT%TZ) $(nproc) cores, $(git rev-parse --short HEAD)${1:+, baseline $1}"
  for row in "${rows[@]}"; do
    for run in $(seq "${RUNS:-3}"); do
      for bin in "${bins[@]}"; do
        echo "## $(basename "$bin") run $run"
        # shellcheck disable=SC2086
        "$bin" $row -concurrency 16 -per-webhook 4
      done
    done
  done
} | tee bench/out/deliver.txt
