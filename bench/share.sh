#!/usr/bin/env bash
# The share of coursed's CPU that one red line takes, read from perf samples of one server rather
# than from the throughput of two: coursed alone on the last core under wrk (as bench/lib.sh's
# PIN=1), `perf record` of the whole process, and a sample counts for the red line when it was
# taken on the line's own thread or in a function compiled from the line's source files. On this
# shared machine the ratio of two servers' req/s moves by several per cent from round to round;
# this share moves by a few tenths, so a change to the red line shows here first.
#   bench/share.sh [ROUNDS] [SECONDS] [PATH]      (defaults 3 rounds of 5 s, /ping)
# THREADS (default rdl-log, the log writer) and SOURCES (default src/log and
# src/runtime/access_log.c: the logger and the access-log middleware) name the red line; ARGS:
# more coursed arguments; DETAIL=1 prints each function's share too. Samples in helpers shared with
# other code (memcpy, the hex encoder) and indirect costs (the cache lines the line's bytes take,
# the switches to the writer) are not counted: the share is a floor. Time coursed spends waiting
# for wrk is not sampled, so the share is of the CPU coursed used.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-5}
URLPATH=${3:-/ping}
COURSED=${COURSED:-build/coursed}
THREADS=${THREADS:-rdl-log}
SOURCES=${SOURCES:-src/log src/runtime/access_log.c}
ARGS=${ARGS:-}
OBJDIR=${OBJDIR:-build/CMakeFiles/redline.dir}
[ -x "$COURSED" ] || { echo "build coursed first (make build)"; exit 1; }
command -v perf >/dev/null || { echo "needs perf (Debian: linux-perf)"; exit 1; }
PIN=1
# shellcheck source=bench/lib.sh
. bench/lib.sh

# The functions compiled from SOURCES, one per line, from their object files.
objs=()
for s in $SOURCES; do
  if [ -d "$OBJDIR/$s" ]; then objs+=("$OBJDIR/$s"/*.c.o); else objs+=("$OBJDIR/$s.o"); fi
done
nm "${objs[@]}" 2>/dev/null | awk 'NF == 3 && $2 ~ /^[tT]$/ {print $3}' | sort -u >"$work/funcs"
[ -s "$work/funcs" ] || { echo "no functions found for '$SOURCES' under $OBJDIR"; exit 1; }

printf '%-6s %9s %8s %9s %9s %9s\n' round req/s samples threads functions total
# shellcheck disable=SC2154  # s_pid and s_addr are set by start_coursed
for r in $(seq "$ROUNDS"); do
  start_coursed s "$COURSED" "$ARGS"
  SECS=2 rps "http://$s_addr$URLPATH" >/dev/null
  "${client_cpus[@]}" wrk -t1 -c"$CONNS" -d"$((SECS + 2))s" "http://$s_addr$URLPATH" >"$work/wrk.out" &
  wrk_pid=$!
  sleep 1
  perf record -q -F 4000 -p "$s_pid" -o "$work/perf.data" -- sleep "$SECS" >/dev/null 2>&1
  wait "$wrk_pid"
  stop_coursed s
  perf script -i "$work/perf.data" -F comm,ip,sym 2>/dev/null |
    awk -v threads="$THREADS" -v rps="$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")" \
        -v round="$r" -v funcs="$work/funcs" -v detail="${DETAIL:-0}" '
      BEGIN { while ((getline f < funcs) > 0) fn[f] = 1; n = split(threads, t, " "); for (i = 1; i <= n; i++) th[t[i]] = 1 }
      { all++; if ($1 in th) thr++; else if ($3 in fn) { fun++; per[$3]++ } }
      END {
        printf "%-6s %9.0f %8d %8.2f%% %8.2f%% %8.2f%%\n", round, rps, all, 100 * thr / all, 100 * fun / all, 100 * (thr + fun) / all
        if (detail) for (f in per) printf "         %6.2f%%  %s\n", 100 * per[f] / all, f
      }'
done
