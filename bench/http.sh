#!/usr/bin/env bash
# HTTP throughput: nginx `return 200` (the ceiling: access_log off, workers = cores) against
# coursed's cheapest route (GET /ping) and a pool route (GET /v1/courses/3, SQLite on the pool),
# wrk on loopback, runs interleaved (nginx, coursed, nginx, coursed, ...) and the median ratio
# printed. The load generator shares the machine's cores with the server: compare ratios from one
# run, never absolute numbers across runs.
#   bench/http.sh [ROUNDS] [SECONDS]      (defaults 3 rounds of 5 s; wrk -t1 -c64)
# A feature's cost: COMPARE=NAME also runs a second coursed with that feature off, interleaved
# with the first, and prints throughput on over off and the server's CPU time per request in each
# (utime + stime from /proc: steadier than req/s when the machine is shared). NAME is one of
#   metrics      RED middleware and collectors (metrics.enabled=false)
#   access-log   one access line per request (log.access=false)
# or COMPARE=custom with ON_ARGS / OFF_ARGS: extra coursed arguments for each side.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-5}
CONNS=${CONNS:-64}
COURSED=${COURSED:-build/coursed}
command -v wrk >/dev/null && command -v nginx >/dev/null || { echo "needs wrk and nginx (scripts/deps.sh)"; exit 1; }
[ -x "$COURSED" ] || { echo "build coursed first (make build)"; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

nport=$(free_port)
mkdir -p "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes $(nproc);
pid $work/nginx/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$nport reuseport;
    location / { return 200 "pong\n"; }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)

ON_ARGS=${ON_ARGS:-}
case "${COMPARE:-}" in
  "") OFF_ARGS= ;;
  metrics) OFF_ARGS="--set metrics.enabled=false" ;;
  access-log) OFF_ARGS="--set log.access=false" ;;
  custom) OFF_ARGS=${OFF_ARGS:-} ;;
  *) echo "COMPARE: unknown feature '$COMPARE'"; exit 2 ;;
esac
# Every coursed writes its log to a file, as a pod's stdout is collected.
# shellcheck disable=SC2086
"$COURSED" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/coursed" \
  --set lifecycle.drain_delay=0s $ON_ARGS >"$work/coursed.log" 2>&1 &
pids+=($!)
cpid=$!
for _ in $(seq 100); do grep -q '"msg":"ready"' "$work/coursed.log" && break; sleep 0.1; done
caddr=$(grep -o '"addr":"[^"]*' "$work/coursed.log" | head -1 | cut -d'"' -f4)
if [ -n "${COMPARE:-}" ]; then
  # shellcheck disable=SC2086
  "$COURSED" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/coursed-off" \
    --set lifecycle.drain_delay=0s $OFF_ARGS >"$work/coursed-off.log" 2>&1 &
  pids+=($!)
  opid=$!
  for _ in $(seq 100); do grep -q '"msg":"ready"' "$work/coursed-off.log" && break; sleep 0.1; done
  oaddr=$(grep -o '"addr":"[^"]*' "$work/coursed-off.log" | head -1 | cut -d'"' -f4)
fi
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$nport/" >/dev/null && break; sleep 0.1; done

rps() { wrk -t1 -c"$CONNS" -d"${SECS}s" "$1" | awk '/Requests\/sec/ {print $2}'; }
# CPU clock ticks a process has used (utime + stime).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# wrk against URL while PID serves it: "req/s cpu-microseconds-per-request".
rps_cpu() {
  local t0 t1
  t0=$(ticks "$2")
  wrk -t1 -c"$CONNS" -d"${SECS}s" "$1" >"$work/wrk.out"
  t1=$(ticks "$2")
  awk -v dt=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" \
    '/requests in/ {n=$1} /Requests\/sec/ {r=$2} END {printf "%s %.2f\n", r, dt / hz * 1e6 / n}' "$work/wrk.out"
}

declare -a n c p oc op cu ocu pu opu
for r in $(seq "$ROUNDS"); do
  n+=("$(rps "http://127.0.0.1:$nport/")")
  if [ -n "${oaddr:-}" ]; then
    read -r a b < <(rps_cpu "http://$caddr/ping" "$cpid"); c+=("$a"); cu+=("$b")
    read -r a b < <(rps_cpu "http://$oaddr/ping" "$opid"); oc+=("$a"); ocu+=("$b")
    read -r a b < <(rps_cpu "http://$caddr/v1/courses/3" "$cpid"); p+=("$a"); pu+=("$b")
    read -r a b < <(rps_cpu "http://$oaddr/v1/courses/3" "$opid"); op+=("$a"); opu+=("$b")
  else
    c+=("$(rps "http://$caddr/ping")")
    p+=("$(rps "http://$caddr/v1/courses/3")")
  fi
  echo "round $r: nginx ${n[-1]} req/s, coursed /ping ${c[-1]} req/s, coursed /v1/courses/3 ${p[-1]} req/s"
  [ -n "${oaddr:-}" ] && echo "round $r: $COMPARE off: /ping ${oc[-1]} req/s, /v1/courses/3 ${op[-1]} req/s;" \
    "cpu us/request on/off: /ping ${cu[-1]}/${ocu[-1]}, /v1/courses/3 ${pu[-1]}/${opu[-1]}"
done
if [ -n "${oaddr:-}" ]; then
  python3 - "${c[*]}" "${oc[*]}" "${p[*]}" "${op[*]}" "${cu[*]}" "${ocu[*]}" "${pu[*]}" "${opu[*]}" "$COMPARE" <<'PY'
import statistics, sys
c, oc, p, op, cu, ocu, pu, opu = ([float(x) for x in a.split()] for a in sys.argv[1:9])
name = sys.argv[9]
med = lambda a, b: statistics.median([x / y for x, y in zip(a, b)])
print(name + " on / off, req/s (median of per-round ratios): /ping %.3f, /v1/courses/3 %.3f"
      % (med(c, oc), med(p, op)))
print(name + " on / off, server CPU per request (median of per-round ratios): /ping %.3f, /v1/courses/3 %.3f"
      % (med(cu, ocu), med(pu, opu)))
print("server CPU us/request, medians: /ping on %.2f off %.2f, /v1/courses/3 on %.2f off %.2f"
      % (statistics.median(cu), statistics.median(ocu), statistics.median(pu), statistics.median(opu)))
PY
fi

python3 - "${n[*]}" "${c[*]}" "${p[*]}" <<'PY'
import statistics, sys
n, c, p = ([float(x) for x in a.split()] for a in sys.argv[1:4])
print("median req/s: nginx %.0f, coursed /ping %.0f, coursed /v1/courses/3 %.0f"
      % (statistics.median(n), statistics.median(c), statistics.median(p)))
print("ratio to nginx (median of per-round ratios): /ping %.3f, /v1/courses/3 %.3f"
      % (statistics.median([b / a for a, b in zip(n, c)]), statistics.median([b / a for a, b in zip(n, p)])))
PY
