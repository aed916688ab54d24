# bench/lib.sh: what the load benchmarks (bench/http.sh, bench/ab.sh) share, sourced by them:
# a work directory and the processes started, stopped by PID on exit; nginx `return 200` on a
# free loopback port (the ceiling, and a sink for OTLP exports that costs next to nothing);
# coursed started and waited for; wrk with the server's CPU time per request.
# Uses: SECS (wrk seconds), CONNS (wrk connections, default 64), PIN (1: coursed on the last
# core, wrk and nginx on the others, so req/s measures the server's own capacity instead of its
# share of cores it fights the load generator for; needs 2 cores or more), LOG_SINK (pipe, the
# default: coursed's stdout is a pipe that a `cat` on the client cores copies to a file, as a
# pod's stdout is a pipe the container runtime reads and writes to the node's disk; file: stdout
# is the file itself, so coursed's log writer also pays the file system's work).

command -v wrk >/dev/null && command -v nginx >/dev/null || { echo "needs wrk and nginx (scripts/deps.sh)"; exit 1; }
CONNS=${CONNS:-64}
PIN=${PIN:-0}
LOG_SINK=${LOG_SINK:-pipe}
case "$LOG_SINK" in pipe|file) ;; *) echo "LOG_SINK: pipe or file, not '$LOG_SINK'"; exit 2 ;; esac
server_cpus=()
client_cpus=()
if [ "$PIN" = 1 ]; then
  last=$(($(nproc) - 1))
  [ "$last" -ge 1 ] || { echo "PIN=1 needs 2 cores or more"; exit 1; }
  server_cpus=(taskset -c "$last")
  client_cpus=(taskset -c "0-$((last - 1))")
fi
work=$(mktemp -d)
pids=()
# Stopped newest first: a log reader outlives the coursed that writes to it.
cleanup() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts nginx (workers = cores, no access log); sets sink to its URL.
start_nginx() {
  local port
  port=$(free_port)
  mkdir -p "$work/nginx/logs"
  cat > "$work/nginx/nginx.conf" <<CONF
worker_processes $(nproc);
pid $work/nginx/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$port reuseport; location / { return 200 "pong\n"; } } }
CONF
  "${client_cpus[@]}" nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
  pids+=($!)
  sink="http://127.0.0.1:$port"
  for _ in $(seq 50); do curl -sf "$sink/" >/dev/null && break; sleep 0.1; done
}

# Starts one coursed (not in a subshell: its PID must reach the cleanup) and waits until it is
# ready; sets <name>_pid and <name>_addr. Its log ends in $work/<name>.log (see LOG_SINK).
start_coursed() {   # name, binary, "extra args", env assignments...
  local name=$1 bin=$2 args=$3; shift 3
  local out="$work/$name.log"
  if [ "$LOG_SINK" = pipe ]; then
    out="$work/$name.pipe"
    mkfifo "$out"
    "${client_cpus[@]}" cat "$out" >"$work/$name.log" &
    pids+=($!)
    eval "${name}_reader=$!"
  fi
  # shellcheck disable=SC2086
  "${server_cpus[@]}" env "$@" "$bin" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$work/$name" \
    --set lifecycle.drain_delay=0s $args >"$out" 2>&1 &
  pids+=($!)
  eval "${name}_pid=$!"
  for _ in $(seq 100); do grep -q '"msg":"ready"' "$work/$name.log" && break; sleep 0.1; done
  eval "${name}_addr=$(grep -o '"addr":"[^"]*' "$work/$name.log" | head -1 | cut -d'"' -f4)"
}

# Stops a coursed started by start_coursed (SIGTERM, waited for), then its log reader (which
# ends at the pipe's end of file), and forgets both PIDs.
stop_coursed() {   # name
  local pid reader keep=() p
  pid=$(eval "echo \$${1}_pid")
  reader=$(eval "echo \${${1}_reader:-}")
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ -z "$reader" ] || wait "$reader" 2>/dev/null || true
  for p in "${pids[@]}"; do [ "$p" = "$pid" ] || [ "$p" = "$reader" ] || keep+=("$p"); done
  pids=("${keep[@]}")
  rm -f "$work/$1.pipe"
}

rps() { "${client_cpus[@]}" wrk -t1 -c"$CONNS" -d"${SECS}s" "$1" | awk '/Requests\/sec/ {print $2}'; }
# CPU clock ticks a process has used (utime + stime).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# wrk against URL while PID serves it: "req/s cpu-microseconds-per-request".
rps_cpu() {   # url, pid
  local t0 t1
  t0=$(ticks "$2")
  "${client_cpus[@]}" wrk -t1 -c"$CONNS" -d"${SECS}s" "$1" >"$work/wrk.out"
  t1=$(ticks "$2")
  awk -v dt=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" \
    '/requests in/ {n=$1} /Requests\/sec/ {r=$2} END {printf "%s %.2f\n", r, dt / hz * 1e6 / n}' "$work/wrk.out"
}
