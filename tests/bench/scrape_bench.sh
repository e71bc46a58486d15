#!/bin/sh
# scrape_bench.sh [SECONDS]: 50 targets x 2,000 series scraped every 1s over HTTP by
# moonwatch (parse + report series; no receiver unless SCRAPE_BENCH_FORWARD=1), measured over
# SECONDS (default 30):
# CPU seconds per million samples and RSS. Run from the repository root after a build.
set -eu
secs=${1:-30}
bin=${MOONWATCH_BIN:-build/moonwatch}
tmp=$(mktemp -d)
port=$((20000 + $$ % 20000))
"$bin" lua tests/bench/targets.lua "$port" 50 2000 2>"$tmp/targets.log" &
tpid=$!
trap 'kill $tpid $mpid 2>/dev/null; rm -rf "$tmp"' EXIT
targets=""
for i in $(seq 1 50); do targets="$targets{ __address__ = \"127.0.0.1:$port\", __metrics_path__ = \"/t$i\" },"; done
# SCRAPE_BENCH_FORWARD=1: the samples also go through prometheus.relabel (two rules) into a
# prometheus.remote_write's WAL (its endpoint refuses connections: reads and retries only).
forward="{}"
extra=""
if [ "${SCRAPE_BENCH_FORWARD:-0}" = 1 ]; then
  forward="{ prometheus.relabel.bench.receiver }"
  extra='
prometheus.relabel "bench" {
  rule = {
    { source_labels = { "__name__" }, regex = "nosuch_.*", action = "drop" },
    { source_labels = { "instance" }, regex = "([^:]+):.*", target_label = "host" },
  },
  forward_to = { prometheus.remote_write.bench.receiver },
}
prometheus.remote_write "bench" {
  endpoint = { url = "http://127.0.0.1:1/api/v1/write" },
}'
fi
cat > "$tmp/p.lua" <<LUA
prometheus.scrape "bench" {
  targets = { $targets },
  forward_to = $forward,
  scrape_interval = "1s",
  scrape_timeout = "1s",
}
$extra
LUA
sleep 1
"$bin" run --server.http.listen-addr=127.0.0.1:0 --storage.path="$tmp/data" "$tmp/p.lua" 2>"$tmp/mw.log" &
mpid=$!
sleep 5 # warm up: every target scraped a few times
hz=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
c0=$(cpu $mpid)
sleep "$secs"
c1=$(cpu $mpid)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$mpid/status")
samples=$((50 * 2005 * secs))
awk -v c0="$c0" -v c1="$c1" -v hz="$hz" -v s="$samples" -v rss="$rss" -v secs="$secs" -v fwd="$( [ "${SCRAPE_BENCH_FORWARD:-0}" = 1 ] && echo ' -> relabel -> remote_write')" 'BEGIN {
  cpu = (c1 - c0) / hz
  printf "moonwatch scrape%s: 50 targets x 2000 series @1s, %ds: %.2f CPU s (%.1f%% of a core), %.3f CPU s per million samples, RSS %.1f MiB\n",
    fwd, secs, cpu, 100 * cpu / secs, cpu / (s / 1e6), rss / 1024
}'
