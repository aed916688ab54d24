#!/usr/bin/env bash
# A/B of two coursed builds with the same settings: both run side by side, wrk rounds alternate
# between them (A first in odd rounds), and the script prints per round and as medians B/A of
# req/s and of server CPU time per request (utime + stime from /proc). On a shared 2-core machine
# a change's effect is smaller than the drift between two runs of bench/http.sh; measured in the
# same rounds against the build before it, it shows.
#   bench/ab.sh BIN_A BIN_B [ROUNDS] [SECONDS] [PATH]     (defaults 6 rounds of 5 s, /ping)
# TRACING=1.0 (default) or a ratio: both export every sampled span as OTLP protobuf to nginx's
# `return 200`; TRACING=off: tracing.enabled=false on both. EXTRA_ARGS: more coursed arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?usage: bench/ab.sh BIN_A BIN_B [ROUNDS] [SECONDS] [PATH]}
B=${2:?usage: bench/ab.sh BIN_A BIN_B [ROUNDS] [SECONDS] [PATH]}
ROUNDS=${3:-6}
SECS=${4:-5}
URLPATH=${5:-/ping}
TRACING=${TRACING:-1.0}
command -v wrk >/dev/null && command -v nginx >/dev/null || { echo "needs wrk and nginx (scripts/deps.sh)"; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes $(nproc);
pid $work/nginx/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$nport reuseport; location / { return 200 "pong\n"; } } }
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)

env_args=()
args="--set lifecycle.drain_delay=0s ${EXTRA_ARGS:-}"
if [ "$TRACING" = off ]; then
  args="$args --set tracing.enabled=false"
else
  env_args=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$nport" OTEL_TRACES_SAMPLER=traceidratio
            OTEL_TRACES_SAMPLER_ARG="$TRACING")
fi

start_coursed() {   # name, binary
  # shellcheck disable=SC2086
  env "${env_args[@]}" "$2" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/$1" \
    $args >"$work/$1.log" 2>&1 &
  pids+=($!)
  eval "${1}_pid=$!"
  for _ in $(seq 100); do grep -q '"msg":"ready"' "$work/$1.log" && break; sleep 0.1; done
  eval "${1}_addr=$(grep -o '"addr":"[^"]*' "$work/$1.log" | head -1 | cut -d'"' -f4)"
}
start_coursed a "$A"
start_coursed b "$B"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rps_cpu() {   # addr, pid: "req/s cpu-us-per-request"
  local t0 t1
  t0=$(ticks "$2")
  wrk -t1 -c64 -d"${SECS}s" "http://$1$URLPATH" >"$work/wrk.out"
  t1=$(ticks "$2")
  awk -v dt=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" \
    '/requests in/ {n=$1} /Requests\/sec/ {r=$2} END {printf "%s %.2f\n", r, dt / hz * 1e6 / n}' "$work/wrk.out"
}
ra=(); rb=()
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then
    ra+=("$(rps_cpu "$a_addr" "$a_pid")"); rb+=("$(rps_cpu "$b_addr" "$b_pid")")
  else
    rb+=("$(rps_cpu "$b_addr" "$b_pid")"); ra+=("$(rps_cpu "$a_addr" "$a_pid")")
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
