#!/bin/sh
# loki_process_bench.sh [MOONWATCH] [ITERATIONS]: entries per second through loki.process with
# json + labels + timestamp stages (one core: the Lua thread), through `moonwatch run`; a
# batch of 1000 JSON lines of ~180 bytes over 10 streams is sent ITERATIONS times (default 200);
# entries per CPU second of the process (the machine may be shared: wall time is shown too).
# Also the same batch through loki.process with no stage (the batch in/out cost alone).
set -eu
bin=${1:-build/moonwatch}
iters=${2:-200}
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
run() { # name stages
  cat >"$dir/p.lua" <<PIPE
bench.logsource "s" { iterations = $iters, report = "$dir/report", forward_to = { loki.process.p.receiver } }
loki.process "p" {
  forward_to = { bench.logdiscard.c.receiver },
  $2
}
bench.logdiscard "c" {}
PIPE
  rm -f "$dir/report"
  "$bin" run --server.http.listen-addr=127.0.0.1:0 --component.path=tests/bench/components "$dir/p.lua" \
    >"$dir/log" 2>&1 &
  pid=$!
  i=0
  while [ ! -s "$dir/report" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
  kill "$pid"; wait "$pid" || true
  printf '%-28s %s\n' "$1" "$(cat "$dir/report" 2>/dev/null || echo "no result: $(tail -3 "$dir/log")")"
}
run "no stages" ""
run "json" 'stage.json { expressions = { level = "", ts = "", path = "" } },'
run "json+labels+timestamp" 'stage.json { expressions = { level = "", ts = "", path = "" } },
  stage.labels { values = { level = "" } },
  stage.timestamp { source = "ts", format = "RFC3339Nano" },'
run "regex+labels" 'stage.regex { expression = "\"level\":\"(?P<level>[a-z]+)\"" },
  stage.labels { values = { level = "" } },'
