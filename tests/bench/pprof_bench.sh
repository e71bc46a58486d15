#!/bin/sh
# pprof_bench.sh: the CPU cost of /debug/pprof/profile (sampling at 100 Hz) on a running
# moonwatch with a steady load: a pipeline scraping its own metrics every second through a
# prometheus.relabel whose Lua function rule burns ~BURN iterations of math per series (the
# relabel cache holds one result, so the rule runs for nearly every series of every scrape).
# Alternates ROUNDS windows of WINDOW seconds without and with a CPU profile being taken and
# prints the CPU seconds (utime+stime of the moonwatch process, /proc/<pid>/stat) of each, the
# medians and the difference (on a shared machine this A/B is noisy: +-10% between windows of
# the same kind), then the sampler's direct cost each profile reports in its comment (time in
# the SIGPROF handler and in building Lua stacks, measured inside the process).
#   tests/bench/pprof_bench.sh [MOONWATCH_BIN] [ROUNDS] [WINDOW] [BURN]
set -eu
bin=${1:-build/moonwatch}
rounds=${2:-4}
window=${3:-10}
burn=${4:-60000}
tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
cat >"$tmp/pipeline.lua" <<LUA
local function burn_cpu(labels)
  local x = 0
  for i = 1, $burn do
    x = x + math.sin(i)
  end
  labels.burnt = tostring(x > 0)
  return labels
end
prometheus.exporter.self "default" {}
prometheus.scrape "self" {
  targets = prometheus.exporter.self.default.targets,
  forward_to = { prometheus.relabel.burn.receiver },
  scrape_interval = "1s",
  scrape_timeout = "1s",
}
prometheus.relabel "burn" {
  forward_to = {},
  rule = { burn_cpu },
  max_cache_size = 1,
}
LUA
port=$((20000 + $$ % 20000))
"$bin" run --server.http.listen-addr=127.0.0.1:$port --storage.path="$tmp/data" "$tmp/pipeline.lua" 2>"$tmp/log" &
pid=$!
sleep 3
ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
off="" on="" cost=""
i=0
while [ $i -lt "$rounds" ]; do
  a=$(ticks); sleep "$window"; b=$(ticks)
  off="$off $(echo "$a $b $hz" | awk '{ printf "%.2f", ($2 - $1) / $3 }')"
  a=$(ticks)
  curl -s -o "$tmp/cpu.pb.gz" "http://127.0.0.1:$port/debug/pprof/profile?seconds=$window"
  b=$(ticks)
  cost="$cost
  $(gzip -dc "$tmp/cpu.pb.gz" | strings | grep -o 'sampler cost: .*core')"
  on="$on $(echo "$a $b $hz" | awk '{ printf "%.2f", ($2 - $1) / $3 }')"
  i=$((i + 1))
done
median() { echo "$@" | tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
m_off=$(median $off) m_on=$(median $on)
echo "pprof_bench: $rounds windows of ${window}s each; CPU seconds without profiling:$off; while profiling at 100 Hz:$on"
echo "pprof_bench: the sampler's own cost, per profile:$cost"
echo "pprof_bench: median $m_off s without, $m_on s with: overhead $(echo "$m_off $m_on" | awk '{ printf "%.2f", ($2 / $1 - 1) * 100 }')% of the process's CPU, $(echo "$m_off $m_on $window" | awk '{ printf "%.2f", ($2 - $1) / $3 * 100 }')% of one core (profile of $(wc -c <"$tmp/cpu.pb.gz") bytes)"
