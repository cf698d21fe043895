#!/usr/bin/env bash
# End-to-end delivery throughput: a real `rswebhooks serve` in front of a fast
# upstream, clients POSTing creates through the proxy, a sink verifying both
# signatures of every notification (see bench/e2e/main.go), and in the same
# run bench/deliver (the engine alone, from stored events) with the same
# events x webhooks, so the two can be compared as a ratio. Rounds alternate
# the binaries so a baseline and a candidate share the machine's conditions.
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
go build -o bench/out/e2e ./bench/e2e
go build -o bench/out/rswebhooks-cur ./cmd/rswebhooks
go build -o bench/out/deliver-cur ./bench/deliver
names=(cur)
if [ $# -ge 1 ]; then
  old=$(mktemp -d)
  trap 'rm -rf "$old"' EXIT
  git archive "$1" | tar -x -C "$old"
  (cd "$old" && go build -o "$OLDPWD/bench/out/rswebhooks-base" ./cmd/rswebhooks && go build -o "$OLDPWD/bench/out/deliver-base" ./bench/deliver)
  names=(base cur)
fi
out=bench/out/e2e.txt
{
  echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(git rev-parse --short HEAD)${1:+, baseline $1}, $EVENTS events x $WEBHOOKS webhooks"
  for r in $(seq "$ROUNDS"); do
    for n in "${names[@]}"; do
      bench/out/e2e -bin "$n=bench/out/rswebhooks-$n" -events "$EVENTS" -webhooks "$WEBHOOKS" | sed "s/round=1/round=$r/"
      echo "deliver bin=$n round=$r $(bench/out/deliver-"$n" -mode throughput -events "$EVENTS" -webhooks "$WEBHOOKS" -concurrency 16 -per-webhook 4 | grep -o 'deliveries/s=[0-9]*')"
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
      printf "| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f |\n", n, me[n], mc[n], mbc[n], ma[n], mb[n], md[n], me[n] / md[n]
    }
    if (("base", 1) in e2e)
      printf "\ncur/base: end-to-end %.2fx, CPU per delivery %.2fx, bench/deliver %.2fx\n", me["cur"] / me["base"], mc["cur"] / mc["base"], md["cur"] / md["base"]
    if (("base", 1) in al && na["base"] > 0 && ma["base"] > 0)
      printf "cur/base: allocations per delivery %.2fx, bytes allocated per delivery %.2fx\n", ma["cur"] / ma["base"], mb["cur"] / mb["base"]
  }' "$out" | tee -a "$out"
