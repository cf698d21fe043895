#!/usr/bin/env bash
# Reconciler costs: one run against the simulator holding 10,000 reports and
# 1,000 each of categories, data connections, scheduled tasks and data
# alerts (requests per run, snapshot size, wall time against the bare list
# requests), and the in-memory decode and diff against generic JSON
# decoding. Figures go to docs/benchmarks.md, "Reconciler".
set -euo pipefail
cd "$(dirname "$0")/../.."
exec go test -run '^$' -bench . -benchtime "${BENCHTIME:-5x}" -benchmem -count "${COUNT:-3}" ./reconcile/
