#!/bin/sh
# file_tail_bench.sh: lines per second that local.file_match -> loki.source.file tail
# from FILES files holding LINES lines of ~200 bytes in all (read from their start, in
# one moonwatch process, into a receiver that only counts), CPU seconds per million
# lines (utime+stime of the process from /proc/<pid>/stat, startup excluded) and RSS.
#   tests/bench/file_tail_bench.sh [MOONWATCH_BIN] [LINES] [FILES...]
# SINK=loki: end to end instead: the lines go on through loki.write (defaults: queue on disk,
# snappy protobuf) to the suite's Loki receiver in count mode (another process, its CPU not
# counted), and the time is until the receiver has them all.
set -eu
bin=${1:-build/moonwatch}
lines=${2:-2000000}
shift 2 2>/dev/null || shift $#
[ $# -gt 0 ] || set -- 1 100 1000
src=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pid=
rpid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  [ -n "$rpid" ] && kill "$rpid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
ticks=$(getconf CLK_TCK)
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
sink='bench.logcount.c.receiver'
if [ "${SINK:-}" = loki ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$bin" lua "$src/../e2e/fixtures/loki_receiver.lua" "$port" count >"$tmp/receiver.log" 2>&1 &
  rpid=$!
  until curl -sf "http://127.0.0.1:$port/ready" >/dev/null; do sleep 0.1; done
  sink='loki.write.w.receiver'
fi
received() { curl -s "http://127.0.0.1:$port/count" | sed -n 's/.*"entries": *\([0-9]*\).*/\1/p'; }
printf '%-6s %10s %12s %14s %10s %10s\n' files lines lines/s cpu_s/Mlines rss_MiB hwm_MiB
for files in "$@"; do
  rm -rf "$tmp/logs" "$tmp/data" "$tmp/done"
  mkdir -p "$tmp/logs"
  per=$((lines / files))
  # ~200-byte lines, distinct per file, written in rounds over the files
  write() {
    awk -v files="$files" -v per="$per" -v rounds="$1" -v dir="$tmp/logs" 'BEGIN {
      pad = sprintf("%150s", ""); gsub(/ /, "x", pad)
      step = int(per / rounds)
      for (r = 0; r < rounds; r++)
        for (f = 0; f < files; f++) {
          out = sprintf("%s/app-%04d.log", dir, f)
          for (i = r * step; i < (r + 1) * step; i++)
            printf "ts=2024-01-01T00:00:00Z level=info file=%d line=%08d msg=\"%s\"\n", f, i, pad >> out
          fflush(out)
          if (files > 200) close(out)
        }
    }'
  }
  per=$((per / 100 * 100))
  total=$((per * files))
  if [ -n "${FOLLOW:-}" ]; then
    for f in $(seq 0 $((files - 1))); do : >"$tmp/logs/$(printf 'app-%04d.log' "$f")"; done
  else
    write 1
  fi
  cat >"$tmp/pipeline.lua" <<LUA
local_.file_match "f" { path_targets = { { __path__ = "$tmp/logs/*.log", job = "bench" } } }
loki.source.file "s" {
  targets = local_.file_match.f.targets,
  forward_to = { $sink },
}
bench.logcount "c" { expect = $total, file = "$tmp/done" }
loki.write "w" { endpoint = { url = "http://127.0.0.1:${port:-9}/loki/api/v1/push" } }
LUA
  "$bin" run --server.http.listen-addr=127.0.0.1:0 --storage.path="$tmp/data" \
    --component.path="$src/components" "$tmp/pipeline.lua" >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  c0=$(cpu $pid)
  if [ -n "${FOLLOW:-}" ]; then
    while ! grep -q "pipeline running" "$tmp/err"; do sleep 0.05; done
    sleep 0.3
    c0=$(cpu $pid)
    if [ -n "${PERF:-}" ]; then perf record -g -o "$PERF" -p $pid 2>/dev/null & perfpid=$!; fi
    write 100
  fi
  if [ -n "$rpid" ]; then
    t0=$(date +%s.%N)
    base=$(received)
    while [ "$(($(received) - base))" -lt "$total" ]; do sleep 0.05; done
    echo "$total $((total * 212)) $(echo "$(date +%s.%N) - $t0" | bc)" >"$tmp/done"
  fi
  i=0
  while [ ! -s "$tmp/done" ]; do
    sleep 0.05
    i=$((i + 1))
    [ $i -lt 2400 ] || { echo "timeout: $(cat "$tmp/err")"; exit 1; }
  done
  c1=$(cpu $pid)
  [ -z "${perfpid:-}" ] || { kill -INT $perfpid; wait $perfpid || true; perfpid=; }
  [ -z "${BENCH_DEBUG:-}" ] || echo "cpu ticks $c0 -> $c1" >&2
  rss=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")
  hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
  kill $pid
  wait $pid 2>/dev/null || true
  pid=
  read -r n bytes secs <"$tmp/done"
  awk -v f="$files" -v n="$n" -v s="$secs" -v c0="$c0" -v c1="$c1" -v t="$ticks" -v rss="$rss" -v hwm="$hwm" \
    -v b="$bytes" 'BEGIN {
    printf "%-6d %10d %12.0f %14.3f %10.1f %10.1f   (%.0f bytes/line, %.2f s)\n", f, n, n / s,
      (c1 - c0) / t / (n / 1e6), rss / 1024, hwm / 1024, b / n, s }'
done
