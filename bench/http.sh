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
#     prints each traced/off ratio of throughput and of coursed's CPU time per request (from
#     /proc/PID/stat), medians of the per-round ratios. CPU per request is the steadier figure
#     on a shared machine: it does not count the time the server waited for a core.
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

# CPU time (user + system, clock ticks) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# "req/s cpu-us-per-request" of one wrk run against a coursed (name, path).
measure() {
  local pid=${cpid[$1]} before after out
  before=$(cpu_ticks "$pid")
  out=$(wrk -t1 -c"$CONNS" -d"${SECS}s" "http://$(addr_of "$1" addr)$2")
  after=$(cpu_ticks "$pid")
  echo "$out" | awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" '
    /requests in/ {n = $1} /Requests\/sec/ {r = $2}
    END {printf "%s %.2f\n", r, n ? t / hz * 1e6 / n : 0}'
}

if [ "${TRACING:-0}" = 1 ]; then
  sink="http://127.0.0.1:$nport"
  declare -A cpid
  start_coursed off REDLINE_TRACING_ENABLED=false; cpid[off]=${pids[-1]}
  start_coursed on OTEL_EXPORTER_OTLP_ENDPOINT="$sink" OTEL_TRACES_SAMPLER=always_on; cpid[on]=${pids[-1]}
  start_coursed low OTEL_EXPORTER_OTLP_ENDPOINT="$sink" OTEL_TRACES_SAMPLER=traceidratio \
    OTEL_TRACES_SAMPLER_ARG=0.01; cpid[low]=${pids[-1]}
  results=()
  for r in $(seq "$ROUNDS"); do
    line="round $r:"
    for path in /v1/courses/3 /ping; do
      for who in off on low; do
        m=$(measure "$who" "$path")
        results+=("$r $path $who $m")
        line+=" $path $who ${m% *} req/s ${m#* } us-cpu/req;"
      done
    done
    echo "$line"
  done
  for who in on low; do
    echo "$who: $(curl -s "http://$(addr_of "$who" admin_addr)/debug/tracing")"
  done
  printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
d = {(r, p, w): (float(q), float(c)) for r, p, w, q, c in rows}
rounds = sorted({r for r, _, _ in d})
print("traced / off, median of per-round ratios (throughput; CPU per request):")
for p in ("/v1/courses/3", "/ping"):
    for w, name in (("on", "ratio 1.0 "), ("low", "ratio 0.01")):
        tp = statistics.median(d[(r, p, w)][0] / d[(r, p, "off")][0] for r in rounds)
        cpu = statistics.median(d[(r, p, w)][1] / d[(r, p, "off")][1] for r in rounds)
        print("  %-14s %s: throughput %.3f (cost %+.1f %%), CPU per request %.3f (%+.1f %%)"
              % (p, name, tp, 100 * (1 - tp), cpu, 100 * (cpu - 1)))
'
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
