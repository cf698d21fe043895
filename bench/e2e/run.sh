#!/usr/bin/env bash
# End-to-end delivery throughput: a real `rswebhooks serve` in front of a fast
# upstream, clients POSTing creates through the proxy, a sink verifying both
# signatures of every notification (see bench/e2e/main.go), and in the same
# run bench/deliver (the engine alone, from stored events) with the same
# events x webhooks, so the two can be compared as a ratio. Rounds alternate
# the binaries so a baseline and a candidate share the machine's conditions.
#
# With a baseline each tree runs with its own harness (bench/e2e: clients,
# upstream and sink, the bench process), and a third binary, "cur-oldbench",
# runs the current daemon under the baseline's harness: cur-oldbench against
# base is the daemon's change alone, cur against cur-oldbench the harness's
# (the bench process CPU column shows the harness's own cost).
#
# Usage: bench/e2e/run.sh [baseline-commit]
#   EVENTS=1500 WEBHOOKS=8 ROUNDS=3 bench/e2e/run.sh main
# Results in bench/out/e2e.txt; the summary gives medians and ratios.
set -euo pipefail
cd "$(dirname "$0")/../.."
EVENTS=${EVENTS:-1500}
WEBHOOKS=${WEBHOOKS:-8}
ROUNDS=${ROUNDS:-3}
mkdir -p bench/out
go build -o bench/out/e2e-cur ./bench/e2e
go build -o bench/out/rswebhooks-cur ./cmd/rswebhooks
go build -o bench/out/deliver-cur ./bench/deliver
# name harness daemon deliver ("-": no bench/deliver run)
configs=("cur e2e-cur rswebhooks-cur deliver-cur")
names=(cur)
if [ $# -ge 1 ]; then
  old=$(mktemp -d)
  trap 'rm -rf "$old"' EXIT
  git archive "$1" | tar -x -C "$old"
  (cd "$old" && go build -o "$OLDPWD/bench/out/rswebhooks-base" ./cmd/rswebhooks && go build -o "$OLDPWD/bench/out/deliver-base" ./bench/deliver)
  if [ -d "$old/bench/e2e" ]; then
    (cd "$old" && go build -o "$OLDPWD/bench/out/e2e-base" ./bench/e2e)
  else # a baseline from before bench/e2e: both under this harness
    cp bench/out/e2e-cur bench/out/e2e-base
  fi
  configs=("base e2e-base rswebhooks-base deliver-base" "cur-oldbench e2e-base rswebhooks-cur -" "cur e2e-cur rswebhooks-cur deliver-cur")
  names=(base cur-oldbench cur)
fi
out=bench/out/e2e.txt
{
  echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(git rev-parse --short HEAD)${1:+, baseline $1}, $EVENTS events x $WEBHOOKS webhooks"
  for r in $(seq "$ROUNDS"); do
    for c in "${configs[@]}"; do
      read -r n harness daemon deliver <<<"$c"
      bench/out/"$harness" -bin "$n=bench/out/$daemon" -events "$EVENTS" -webhooks "$WEBHOOKS" | sed "s/round=1/round=$r/"
      if [ "$deliver" != - ]; then
        echo "deliver bin=$n round=$r $(bench/out/"$deliver" -mode throughput -events "$EVENTS" -webhooks "$WEBHOOKS" -concurrency 16 -per-webhook 4 | grep -o 'deliveries/s=[0-9]*')"
      fi
    done
  done
} | tee "$out"

# Summary: medians per binary, e2e/deliver within each binary, cur/base.
awk -v names="${names[*]}" '
  function median(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
  }
  /^bin=/ {
    split($1, b, "="); n = b[2]
    for (i = 2; i <= NF; i++) { split($i, kv, "=")
      if (kv[1] == "deliveries_per_s") e2e[n, ++ne[n]] = kv[2]
      if (kv[1] == "daemon_cpu_us_per_delivery") cpu[n, ++nc[n]] = kv[2]
      if (kv[1] == "bench_cpu_us_per_delivery") bc[n, ++nbc[n]] = kv[2]
      if (kv[1] == "allocs_per_delivery") al[n, ++na[n]] = kv[2]
      if (kv[1] == "alloc_bytes_per_delivery") ab[n, ++nb[n]] = kv[2] }
  }
  /^deliver bin=/ { split($2, b, "="); n = b[2]; split($4, kv, "="); dl[n, ++nd[n]] = kv[2] }
  END {
    split(names, ns, " ")
    print ""
    print "| binary | end-to-end deliveries/s (median) | daemon CPU µs per delivery | bench process CPU µs per delivery | allocations per delivery | bytes allocated per delivery | bench/deliver deliveries/s | end-to-end / bench/deliver |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|"
    for (k = 1; k in ns; k++) {
      n = ns[k]
      delete x; for (i = 1; i <= ne[n]; i++) x[i] = e2e[n, i]; me[n] = median(x, ne[n])
      delete x; for (i = 1; i <= nc[n]; i++) x[i] = cpu[n, i]; mc[n] = median(x, nc[n])
      delete x; for (i = 1; i <= nd[n]; i++) x[i] = dl[n, i]; md[n] = median(x, nd[n])
      delete x; for (i = 1; i <= nbc[n]; i++) x[i] = bc[n, i]; mbc[n] = nbc[n] ? median(x, nbc[n]) : 0
      delete x; for (i = 1; i <= na[n]; i++) x[i] = al[n, i]; ma[n] = median(x, na[n])
      delete x; for (i = 1; i <= nb[n]; i++) x[i] = ab[n, i]; mb[n] = median(x, nb[n])
      if (nd[n]) printf "| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f |\n", n, me[n], mc[n], mbc[n], ma[n], mb[n], md[n], me[n] / md[n]
      else printf "| %s | %.0f | %.0f | %.0f | %.0f | %.0f | — | — |\n", n, me[n], mc[n], mbc[n], ma[n], mb[n]
    }
    if (("base", 1) in e2e)
      printf "\ncur/base: end-to-end %.2fx, CPU per delivery %.2fx, bench/deliver %.2fx\n", me["cur"] / me["base"], mc["cur"] / mc["base"], md["cur"] / md["base"]
    if (("base", 1) in al && na["base"] > 0 && ma["base"] > 0)
      printf "cur/base: allocations per delivery %.2fx, bytes allocated per delivery %.2fx\n", ma["cur"] / ma["base"], mb["cur"] / mb["base"]
    if (("base", 1) in e2e && ("cur-oldbench", 1) in e2e) {
      printf "daemon alone (cur-oldbench/base): end-to-end %.2fx, daemon CPU per delivery %.2fx, bench process CPU per delivery %.2fx\n", me["cur-oldbench"] / me["base"], mc["cur-oldbench"] / mc["base"], mbc["cur-oldbench"] / mbc["base"]
      printf "harness alone (cur/cur-oldbench): end-to-end %.2fx, daemon CPU per delivery %.2fx, bench process CPU per delivery %.2fx\n", me["cur"] / me["cur-oldbench"], mc["cur"] / mc["cur-oldbench"], mbc["cur"] / mbc["cur-oldbench"]
    }
  }' "$out" | tee -a "$out"
