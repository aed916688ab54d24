#!/usr/bin/env bash
# HTTP throughput: nginx `return 200` (the ceiling: access_log off, workers = cores) against
# coursed's cheapest route (GET /ping) and a pool route (GET /v1/courses/3, SQLite on the pool),
# wrk on loopback, runs interleaved (nginx, coursed, nginx, coursed, ...) and the median ratio
# printed. The load generator shares the machine's cores with the server: compare ratios from one
# run, never absolute numbers across runs.
#   bench/http.sh [ROUNDS] [SECONDS]      (defaults 3 rounds of 5 s; wrk -t1 -c64)
#   TRACING=1 bench/http.sh [ROUNDS] [SECONDS]
#     instead: coursed with tracing off, on at ratio 1.0 and at ratio 0.01 (both exporting OTLP
#     protobuf to nginx's `return 200`, a sink that costs next to nothing), interleaved, on
#     GET /v1/courses/3 (a server span and a SQLite child span per request) and GET /ping;
#     prints each traced/off throughput ratio (median of the per-round ratios).
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
    location /v1/traces { return 200 ""; }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)

# Starts one coursed (not in a subshell: its PID must reach the cleanup), waits until it is ready.
start_coursed() {   # name, env assignments...
  local name=$1; shift
  env "$@" "$COURSED" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/$name" \
    --set lifecycle.drain_delay=0s >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q '"msg":"ready"' "$work/$name.log" && break; sleep 0.1; done
}
addr_of() { grep -o "\"$2\":\"[^\"]*" "$work/$1.log" | head -1 | cut -d'"' -f4; }   # name, addr|admin_addr
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$nport/" >/dev/null && break; sleep 0.1; done

rps() { wrk -t1 -c"$CONNS" -d"${SECS}s" "$1" | awk '/Requests\/sec/ {print $2}'; }

if [ "${TRACING:-0}" = 1 ]; then
  sink="http://127.0.0.1:$nport"
  start_coursed off REDLINE_TRACING_ENABLED=false
  start_coursed on OTEL_EXPORTER_OTLP_ENDPOINT="$sink" OTEL_TRACES_SAMPLER=always_on
  start_coursed low OTEL_EXPORTER_OTLP_ENDPOINT="$sink" OTEL_TRACES_SAMPLER=traceidratio \
    OTEL_TRACES_SAMPLER_ARG=0.01
  off=$(addr_of off addr); on=$(addr_of on addr); low=$(addr_of low addr)
  declare -a o1 n1 l1 o2 n2 l2
  for r in $(seq "$ROUNDS"); do
    o1+=("$(rps "http://$off/v1/courses/3")"); n1+=("$(rps "http://$on/v1/courses/3")")
    l1+=("$(rps "http://$low/v1/courses/3")")
    o2+=("$(rps "http://$off/ping")"); n2+=("$(rps "http://$on/ping")"); l2+=("$(rps "http://$low/ping")")
    echo "round $r: /v1/courses/3 off ${o1[-1]} on ${n1[-1]} 0.01 ${l1[-1]} req/s;" \
         "/ping off ${o2[-1]} on ${n2[-1]} 0.01 ${l2[-1]} req/s"
  done
  for who in on low; do
    echo "$who: $(curl -s "http://$(addr_of "$who" admin_addr)/debug/tracing")"
  done
  python3 - "${o1[*]}" "${n1[*]}" "${l1[*]}" "${o2[*]}" "${n2[*]}" "${l2[*]}" <<'PY'
import statistics, sys
o1, n1, l1, o2, n2, l2 = ([float(x) for x in a.split()] for a in sys.argv[1:7])
r = lambda a, b: statistics.median([y / x for x, y in zip(a, b)])
print("traced/off throughput (median of per-round ratios):")
print("  /v1/courses/3: ratio 1.0 %.3f (cost %.1f %%), ratio 0.01 %.3f (cost %.1f %%)"
      % (r(o1, n1), 100 * (1 - r(o1, n1)), r(o1, l1), 100 * (1 - r(o1, l1))))
print("  /ping:         ratio 1.0 %.3f (cost %.1f %%), ratio 0.01 %.3f (cost %.1f %%)"
      % (r(o2, n2), 100 * (1 - r(o2, n2)), r(o2, l2), 100 * (1 - r(o2, l2))))
PY
  exit 0
fi

start_coursed coursed
caddr=$(addr_of coursed addr)

declare -a n c p
for r in $(seq "$ROUNDS"); do
  n+=("$(rps "http://127.0.0.1:$nport/")")
  c+=("$(rps "http://$caddr/ping")")
  p+=("$(rps "http://$caddr/v1/courses/3")")
  echo "round $r: nginx ${n[-1]} req/s, coursed /ping ${c[-1]} req/s, coursed /v1/courses/3 ${p[-1]} req/s"
done

python3 - "${n[*]}" "${c[*]}" "${p[*]}" <<'PY'
import statistics, sys
n, c, p = ([float(x) for x in a.split()] for a in sys.argv[1:4])
print("median req/s: nginx %.0f, coursed /ping %.0f, coursed /v1/courses/3 %.0f"
      % (statistics.median(n), statistics.median(c), statistics.median(p)))
print("ratio to nginx (median of per-round ratios): /ping %.3f, /v1/courses/3 %.3f"
      % (statistics.median([b / a for a, b in zip(n, c)]), statistics.median([b / a for a, b in zip(n, p)])))
PY
