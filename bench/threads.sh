#!/usr/bin/env bash
# Where a coursed's CPU goes, thread by thread: coursed on the last core, wrk on the others, and
# for each set of coursed arguments given, the CPU time per request of each thread (utime + stime
# from /proc/PID/task, threads of one name summed: coursed is the I/O and main threads, rdl-log the
# log writer, rdl-pool-* the pool) and the log writer's writes and context switches per second.
# A whole-process ratio on this shared machine moves by a few per cent from round to round; one
# thread's share (the writer's, say) moves far less, so a change to one thread shows here first.
#   bench/threads.sh ROUNDS SECONDS PATH "ARGS A" ["ARGS B" ...]
#   e.g. bench/threads.sh 3 10 /ping "" "--set log.pipe_buffer=0"
# The configurations alternate (A, B, A, B, ...), each started anew; stdout is a pipe a `cat`
# copies to a file (bench/lib.sh's LOG_SINK=pipe, as in a pod).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:?usage: bench/threads.sh ROUNDS SECONDS PATH "ARGS" ...}
SECS=${2:?usage: bench/threads.sh ROUNDS SECONDS PATH "ARGS" ...}
URLPATH=${3:?usage: bench/threads.sh ROUNDS SECONDS PATH "ARGS" ...}
shift 3
[ $# -ge 1 ] || { echo "give at least one set of coursed arguments (\"\" for none)"; exit 2; }
COURSED=${COURSED:-build/coursed}
[ -x "$COURSED" ] || { echo "build coursed first (make build)"; exit 1; }
PIN=1
# shellcheck source=bench/lib.sh
. bench/lib.sh

# "tid ticks voluntary nonvoluntary syscw name" for each thread of PID.
snapshot() {
  local t
  for t in /proc/"$1"/task/*; do
    printf '%s %s %s %s %s %s\n' "${t##*/}" "$(awk '{print $14 + $15}' "$t/stat")" \
      "$(awk '/^voluntary_ctxt/ {print $2}' "$t/status")" \
      "$(awk '/^nonvoluntary_ctxt/ {print $2}' "$t/status")" \
      "$(awk '/^syscw/ {print $2}' "$t/io")" "$(cat "$t/comm")"
  done
}

# shellcheck disable=SC2154  # t_pid and t_addr are set by start_coursed
for r in $(seq "$ROUNDS"); do
  for args in "$@"; do
    start_coursed t "$COURSED" "$args"
    SECS=2 rps "http://$t_addr$URLPATH" >/dev/null
    snapshot "$t_pid" >"$work/before"
    "${client_cpus[@]}" wrk -t1 -c"$CONNS" -d"${SECS}s" "http://$t_addr$URLPATH" >"$work/wrk.out"
    snapshot "$t_pid" >"$work/after"
    stop_coursed t
    n=$(awk '/requests in/ {print $1}' "$work/wrk.out")
    rate=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
    # join on tid; sum per name (pool threads as one); writer's writes and switches per second
    awk -v n="$n" -v rate="$rate" -v secs="$SECS" -v hz="$(getconf CLK_TCK)" -v args="$args" -v r="$r" '
      NR == FNR { t[$1] = $2; v[$1] = $3; nv[$1] = $4; w[$1] = $5; next }
      {
        name = $6; sub(/-[0-9]+$/, "-*", name)
        cpu[name] += ($2 - t[$1]) / hz * 1e6 / n
        if ($6 == "rdl-log") { lw = ($5 - w[$1]) / secs; lv = ($3 - v[$1] + $4 - nv[$1]) / secs }
      }
      END {
        line = sprintf("round %d [%s] %s req/s, CPU us/request:", r, args, rate)
        for (k in cpu) if (cpu[k] > 0.0005) line = line sprintf(" %s %.3f", k, cpu[k])
        printf "%s; rdl-log %d writes/s, %d switches/s\n", line, lw, lv
      }' "$work/before" "$work/after"
  done
done
