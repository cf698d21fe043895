#!/usr/bin/env bash
# Delivery benchmarks: sustained throughput to a fast loopback receiver
# (1 KB bodies, durable Badger queue, real signing) and event -> first
# attempt latency at a fixed 1,000 events/s, each with peak RSS.
# Usage: bench/deliver/run.sh   (from anywhere; results also in bench/out/)
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p bench/out
go build -o bench/out/deliver-bench ./bench/deliver
{
  echo "# $(date -u +%FT%TZ) $(nproc) cores"
  bench/out/deliver-bench -mode throughput -events 5000 -webhooks 8 -concurrency 32 -per-webhook 4
  bench/out/deliver-bench -mode throughput -events 5000 -webhooks 8 -concurrency 16 -per-webhook 2
  bench/out/deliver-bench -mode latency -events 10000 -webhooks 1 -rate 1000
  go test -run '^$' -bench BenchmarkDeliver -benchtime 20000x ./deliver | grep -E 'Benchmark|deliveries'
} | tee bench/out/deliver.txt
