#!/usr/bin/env bash
# HTTP throughput: nginx `return 200` (the ceiling: access_log off, workers = cores) against
# coursed's cheapest route (GET /ping) and a pool route (GET /v1/courses/3, SQLite on the pool),
# wrk on loopback, runs interleaved (nginx, coursed, nginx, coursed, ...) and the median ratio
# printed. The load generator shares the machine's cores with the server: compare ratios from one
# run, never absolute numbers across runs.
#   bench/http.sh [ROUNDS] [SECONDS]      (defaults 3 rounds of 5 s; wrk -t1 -c64)
#
# A red line's cost: COMPARE=NAME runs a second coursed with the feature off, interleaved with the
# first (which goes first every other round), and prints throughput on/off and the server's CPU
# time per request on/off (utime + stime from /proc: steadier than req/s on a shared machine).
#   metrics       RED middleware and collectors        off: metrics.enabled=false
#   access-log    one access line per request          off: log.access=false
#   tracing       server span per request, ratio 1.0,  off: tracing.enabled=false
#                 exported as OTLP protobuf to nginx's `return 200` (a sink that costs next to nothing)
#   tracing-0.01  the same at ratio 0.01
#   routes        the coloring middleware with bench/routes.yaml (ROUTES=FILE for another file)
#   custom        ON_ARGS / OFF_ARGS: extra coursed arguments for each side
# FRESH=1 starts both coursed anew before each round (after a 1 s warm-up of each path): a
# process's luck in memory layout then varies round to round instead of biasing every round
# (two identical servers kept for a whole run can differ by 5 % on /ping).
# PIN=1 puts both coursed on the last core and wrk and nginx on the others: req/s then measures
# what one core of server does, not its share of cores it fights wrk for (the nginx ratio is
# meaningless then: nginx shares wrk's core).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-5}
COURSED=${COURSED:-build/coursed}
COMPARE=${COMPARE:-}
[ -x "$COURSED" ] || { echo "build coursed first (make build)"; exit 1; }
# shellcheck source=bench/lib.sh
. bench/lib.sh
start_nginx
ON_ARGS=${ON_ARGS:-}
ON_ENV=()
case "$COMPARE" in
  "") ;;
  metrics) OFF_ARGS="--set metrics.enabled=false" ;;
  access-log) OFF_ARGS="--set log.access=false" ;;
  tracing) OFF_ARGS="--set tracing.enabled=false"
    ON_ENV=(OTEL_EXPORTER_OTLP_ENDPOINT="$sink" OTEL_TRACES_SAMPLER=always_on) ;;
  tracing-0.01) OFF_ARGS="--set tracing.enabled=false"
    ON_ENV=(OTEL_EXPORTER_OTLP_ENDPOINT="$sink" OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0.01) ;;
  routes) OFF_ARGS=""; ON_ARGS="--routes ${ROUTES:-bench/routes.yaml}" ;;
  custom) OFF_ARGS=${OFF_ARGS:-} ;;
  *) echo "COMPARE: unknown feature '$COMPARE'"; exit 2 ;;
esac

FRESH=${FRESH:-0}
start_both() {
  start_coursed on "$COURSED" "$ON_ARGS" "${ON_ENV[@]}"
  caddr=$on_addr
  oaddr=""
  if [ -n "$COMPARE" ]; then
    start_coursed off "$COURSED" "$OFF_ARGS"
    oaddr=$off_addr
  fi
}
warm_up() {   # a fresh process's first second (SQLite's cache, the allocator) is not its steady state
  local a
  for a in $caddr $oaddr; do
    SECS=1 rps "http://$a/ping" >/dev/null
    SECS=1 rps "http://$a/v1/courses/3" >/dev/null
  done
}
start_both

declare -a n c p oc op cu ocu pu opu
measure_on()  { read -r a b < <(rps_cpu "http://$caddr$1" "$on_pid"); eval "$2+=($a); $3+=($b)"; }
measure_off() { read -r a b < <(rps_cpu "http://$oaddr$1" "$off_pid"); eval "$2+=($a); $3+=($b)"; }
for r in $(seq "$ROUNDS"); do
  if [ "$FRESH" = 1 ]; then
    if [ "$r" -gt 1 ]; then
      stop_coursed on
      [ -z "$oaddr" ] || stop_coursed off
      start_both
    fi
    warm_up
  fi
  n+=("$(rps "$sink/")")
  if [ -z "$oaddr" ]; then
    c+=("$(rps "http://$caddr/ping")")
    p+=("$(rps "http://$caddr/v1/courses/3")")
  elif [ $((r % 2)) -eq 1 ]; then
    measure_on /ping c cu; measure_off /ping oc ocu
    measure_on /v1/courses/3 p pu; measure_off /v1/courses/3 op opu
  else
    measure_off /ping oc ocu; measure_on /ping c cu
    measure_off /v1/courses/3 op opu; measure_on /v1/courses/3 p pu
  fi
  echo "round $r: nginx ${n[-1]} req/s, coursed /ping ${c[-1]} req/s, coursed /v1/courses/3 ${p[-1]} req/s"
  if [ -n "$oaddr" ]; then
    echo "round $r: $COMPARE off: /ping ${oc[-1]} req/s, /v1/courses/3 ${op[-1]} req/s;" \
      "cpu us/request on/off: /ping ${cu[-1]}/${ocu[-1]}, /v1/courses/3 ${pu[-1]}/${opu[-1]}"
  fi
done

python3 - "${n[*]}" "${c[*]}" "${p[*]}" <<'PY'
import statistics, sys
n, c, p = ([float(x) for x in a.split()] for a in sys.argv[1:4])
print("median req/s: nginx %.0f, coursed /ping %.0f, coursed /v1/courses/3 %.0f"
      % (statistics.median(n), statistics.median(c), statistics.median(p)))
print("ratio to nginx (median of per-round ratios): /ping %.3f, /v1/courses/3 %.3f"
      % (statistics.median([b / a for a, b in zip(n, c)]), statistics.median([b / a for a, b in zip(n, p)])))
PY
if [ -n "$oaddr" ]; then
  python3 - "${c[*]}" "${oc[*]}" "${p[*]}" "${op[*]}" "${cu[*]}" "${ocu[*]}" "${pu[*]}" "${opu[*]}" "$COMPARE" <<'PY'
import statistics, sys
c, oc, p, op, cu, ocu, pu, opu = ([float(x) for x in a.split()] for a in sys.argv[1:9])
name = sys.argv[9]
def med(a, b):
    """Median of the per-round ratios, with their interquartile range (the spread to read it by)."""
    r = [x / y for x, y in zip(a, b)]
    if len(r) < 4:
        return "%.3f" % statistics.median(r)
    q = statistics.quantiles(r, n=4)
    return "%.3f (IQR %.3f-%.3f)" % (statistics.median(r), q[0], q[2])
print("%s on/off, req/s (median of per-round ratios): /ping %s, /v1/courses/3 %s"
      % (name, med(c, oc), med(p, op)))
print("%s on/off, server CPU per request (median of per-round ratios): /ping %s, /v1/courses/3 %s"
      % (name, med(cu, ocu), med(pu, opu)))
print("server CPU us/request, medians: /ping on %.2f off %.2f, /v1/courses/3 on %.2f off %.2f"
      % (statistics.median(cu), statistics.median(ocu), statistics.median(pu), statistics.median(opu)))
PY
fi
