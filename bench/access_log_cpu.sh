#!/usr/bin/env bash
# The access log's cost as CPU time per request, which a shared, noisy machine disturbs far less
# than req/s: two coursed instances, log.access on and off, each loaded in turn with
# wrk -t1 -c64 on GET /ping (interleaved rounds); CPU = utime + stime from /proc/PID/stat.
# The "on" instance writes its log to a file (as a pod's stdout ends up on disk), or to /dev/null
# with SINK=null.
#   bench/access_log_cpu.sh [ROUNDS] [SECONDS]      (defaults 5 rounds of 4 s)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
SECS=${2:-4}
COURSED=${COURSED:-build/coursed}
command -v wrk >/dev/null || { echo "needs wrk (scripts/deps.sh)"; exit 1; }
[ -x "$COURSED" ] || { echo "build coursed first"; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

on_port=$(free_port); off_port=$(free_port)
sink=(--set log.sink=file --set "log.file=$work/on.log")
[ "${SINK:-file}" = null ] && sink=(--set log.sink=file --set log.file=/dev/null)
"$COURSED" --listen 127.0.0.1:"$on_port" --admin-listen "" --data-dir "$work/on" \
  --set lifecycle.drain_delay=0s "${sink[@]}" &
pids+=($!); on_pid=$!
"$COURSED" --listen 127.0.0.1:"$off_port" --admin-listen "" --data-dir "$work/off" \
  --set lifecycle.drain_delay=0s --set log.access=false >/dev/null &
pids+=($!); off_pid=$!
for p in "$on_port" "$off_port"; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$p/ping" >/dev/null && break; sleep 0.1; done
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
per_request() {   # pid port -> microseconds of CPU per request
  local c0 c1 n
  c0=$(ticks "$1")
  n=$(wrk -t1 -c64 -d"${SECS}s" "http://127.0.0.1:$2/ping" | awk '/requests in/ {print $1}')
  c1=$(ticks "$1")
  python3 -c "import os,sys; print('%.3f' % ((int(sys.argv[2]) - int(sys.argv[1])) * 1e6 / os.sysconf('SC_CLK_TCK') / int(sys.argv[3])))" "$c0" "$c1" "$n"
}

declare -a on off
for r in $(seq "$ROUNDS"); do
  on+=("$(per_request "$on_pid" "$on_port")")
  off+=("$(per_request "$off_pid" "$off_port")")
  echo "round $r: CPU per request: access log on ${on[-1]} us, off ${off[-1]} us"
done
python3 - "${on[*]}" "${off[*]}" <<'PY'
import statistics, sys
on, off = ([float(x) for x in a.split()] for a in sys.argv[1:3])
print("median CPU per request: on %.3f us, off %.3f us: the access log costs %+.1f %%"
      % (statistics.median(on), statistics.median(off),
         100 * (statistics.median(on) / statistics.median(off) - 1)))
PY
