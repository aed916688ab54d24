#!/usr/bin/env bash
# A/B of two coursed builds with the same settings: both run side by side, wrk rounds alternate
# between them (A first in odd rounds), and the script prints per round and as medians B/A of
# req/s and of server CPU time per request (utime + stime from /proc). On a shared 2-core machine
# a change's effect is smaller than the drift between two runs of bench/http.sh; measured in the
# same rounds against the build before it, it shows.
#   bench/ab.sh BIN_A BIN_B [ROUNDS] [SECONDS] [PATH]     (defaults 6 rounds of 5 s, /ping)
# TRACING=1.0 (default) or a ratio: both export every sampled span as OTLP protobuf to nginx's
# `return 200`; TRACING=off: tracing.enabled=false on both. EXTRA_ARGS: more coursed arguments.
# PIN=1: both coursed on the last core, wrk and nginx on the others (see bench/lib.sh).
# FRESH=1: both started anew before each round, after a 1 s warm-up of PATH (as in bench/http.sh:
# kept for a whole run, the second of two identical servers came out 3-6 % behind).
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?usage: bench/ab.sh BIN_A BIN_B [ROUNDS] [SECONDS] [PATH]}
B=${2:?usage: bench/ab.sh BIN_A BIN_B [ROUNDS] [SECONDS] [PATH]}
ROUNDS=${3:-6}
SECS=${4:-5}
URLPATH=${5:-/ping}
TRACING=${TRACING:-1.0}
# shellcheck source=bench/lib.sh
. bench/lib.sh
start_nginx

env_args=()
args="${EXTRA_ARGS:-}"
if [ "$TRACING" = off ]; then
  args="$args --set tracing.enabled=false"
else
  env_args=(OTEL_EXPORTER_OTLP_ENDPOINT="$sink" OTEL_TRACES_SAMPLER=traceidratio
            OTEL_TRACES_SAMPLER_ARG="$TRACING")
fi

FRESH=${FRESH:-0}
start_both() {
  start_coursed a "$A" "$args" "${env_args[@]}"
  start_coursed b "$B" "$args" "${env_args[@]}"
}
start_both

ra=(); rb=()
for r in $(seq "$ROUNDS"); do
  if [ "$FRESH" = 1 ]; then
    if [ "$r" -gt 1 ]; then
      stop_coursed a
      stop_coursed b
      start_both
    fi
    SECS=1 rps "http://$a_addr$URLPATH" >/dev/null
    SECS=1 rps "http://$b_addr$URLPATH" >/dev/null
  fi
  if [ $((r % 2)) -eq 1 ]; then
    ra+=("$(rps_cpu "http://$a_addr$URLPATH" "$a_pid")"); rb+=("$(rps_cpu "http://$b_addr$URLPATH" "$b_pid")")
  else
    rb+=("$(rps_cpu "http://$b_addr$URLPATH" "$b_pid")"); ra+=("$(rps_cpu "http://$a_addr$URLPATH" "$a_pid")")
  fi
  echo "round $r $URLPATH: A ${ra[-1]% *} req/s ${ra[-1]#* } us/request, B ${rb[-1]% *} req/s ${rb[-1]#* } us/request"
done
python3 - "${ra[*]}" "${rb[*]}" <<'PY'
import statistics, sys
a, b = ([float(x) for x in s.split()] for s in sys.argv[1:3])
ar, ac, br, bc = a[0::2], a[1::2], b[0::2], b[1::2]
print("B/A (median of per-round ratios): req/s %.3f, server CPU per request %.3f"
      % (statistics.median(y / x for x, y in zip(ar, br)), statistics.median(y / x for x, y in zip(ac, bc))))
PY
