#!/usr/bin/env bash
# HTTP throughput: nginx `return 200` (the ceiling: access_log off, workers = cores) against
# coursed's cheapest route (GET /ping) and a pool route (GET /v1/courses/3, SQLite on the pool),
# wrk on loopback, runs interleaved (nginx, coursed, nginx, coursed, ...) and the median ratio
# printed. The load generator shares the machine's cores with the server: compare ratios from one
# run, never absolute numbers across runs.
#   bench/http.sh [ROUNDS] [SECONDS]      (defaults 3 rounds of 5 s; wrk -t1 -c64)
# ROUTES=FILE also runs a second coursed with --routes FILE (e.g. bench/routes.yaml) and measures
# its /ping in the same rounds: the coloring middleware's cost as a routed/plain req/s ratio and
# as the server's CPU time per request (robust to a noisy neighbour).
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

"$COURSED" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/coursed" \
  --set lifecycle.drain_delay=0s >"$work/coursed.log" 2>&1 &
pids+=($!)
cpid=$!
for _ in $(seq 100); do grep -q '"msg":"ready"' "$work/coursed.log" && break; sleep 0.1; done
caddr=$(grep -o '"addr":"[^"]*' "$work/coursed.log" | head -1 | cut -d'"' -f4)
raddr=""
if [ -n "${ROUTES:-}" ]; then
  "$COURSED" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/routed" \
    --set lifecycle.drain_delay=0s --routes "$ROUTES" >"$work/routed.log" 2>&1 &
  pids+=($!)
  rpid=$!
  for _ in $(seq 100); do grep -q '"msg":"ready"' "$work/routed.log" && break; sleep 0.1; done
  raddr=$(grep -o '"addr":"[^"]*' "$work/routed.log" | head -1 | cut -d'"' -f4)
fi
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$nport/" >/dev/null && break; sleep 0.1; done

rps() { wrk -t1 -c"$CONNS" -d"${SECS}s" "$1" | awk '/Requests\/sec/ {print $2}'; }
# The server's own CPU time per request (utime + stime from /proc), in microseconds: what a
# middleware costs, and unlike req/s it does not move when a neighbour takes the cores.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
us_per_req() {   # PID URL
  local t0 t1 n
  t0=$(cpu_ticks "$1")
  n=$(wrk -t1 -c"$CONNS" -d"${SECS}s" "$2" | awk '/requests in/ {print $1}')
  t1=$(cpu_ticks "$1")
  python3 -c "import os,sys; print('%.3f' % ((int(sys.argv[2]) - int(sys.argv[1])) * 1e6 / os.sysconf('SC_CLK_TCK') / int(sys.argv[3])))" "$t0" "$t1" "$n"
}

declare -a n c p rt cu ru
for r in $(seq "$ROUNDS"); do
  n+=("$(rps "http://127.0.0.1:$nport/")")
  if [ -n "$raddr" ] && [ $((r % 2)) -eq 0 ]; then   # routed right next to plain, first every other round
    rt+=("$(rps "http://$raddr/ping")")
    c+=("$(rps "http://$caddr/ping")")
  else
    c+=("$(rps "http://$caddr/ping")")
    [ -z "$raddr" ] || rt+=("$(rps "http://$raddr/ping")")
  fi
  p+=("$(rps "http://$caddr/v1/courses/3")")
  echo "round $r: nginx ${n[-1]} req/s, coursed /ping ${c[-1]} req/s, coursed /v1/courses/3 ${p[-1]} req/s"
  if [ -n "$raddr" ]; then
    cu+=("$(us_per_req "$cpid" "http://$caddr/ping")")
    ru+=("$(us_per_req "$rpid" "http://$raddr/ping")")
    echo "round $r: coursed --routes /ping ${rt[-1]} req/s; server CPU per /ping: plain ${cu[-1]} us, routed ${ru[-1]} us"
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
if [ -n "$raddr" ]; then
  python3 - "${c[*]}" "${rt[*]}" "${cu[*]}" "${ru[*]}" <<'PY'
import statistics, sys
c, rt, cu, ru = ([float(x) for x in a.split()] for a in sys.argv[1:5])
print("coloring middleware: /ping with --routes / without, median of per-round ratios: %.3f"
      % statistics.median([b / a for a, b in zip(c, rt)]))
print("coloring middleware: server CPU per /ping, median plain %.3f us, routed %.3f us: +%.1f %%"
      % (statistics.median(cu), statistics.median(ru),
         100.0 * (statistics.median(ru) / statistics.median(cu) - 1.0)))
PY
fi
