#!/bin/sh
# loki_write_bench.sh [ENTRIES] [LINE_BYTES]: end to end through `moonwatch run`:
# test.logseq (numbered lines padded to LINE_BYTES, default 200; in batches of 2,000 on 3
# streams) -> loki.write (defaults: batch_size 1 MiB, queue on disk, fsync never) -> the suite's
# Loki receiver in count mode (decodes every request with protobuf-c, keeps nothing).
# Reports wall time until the receiver has all ENTRIES (default 2,000,000), entries/s, and the
# CPU seconds (utime + stime from /proc) of moonwatch and of the receiver per million entries.
# The source is Lua (a table and a logs.add call per line): most of moonwatch's CPU here is the
# source's; tests/bench/bench_loki.c measures loki.write's own C path (queue, encode, snappy).
# Run from the repository root after a build.
set -eu
entries=${1:-2000000}
bytes=${2:-200}
bin=${MOONWATCH_BIN:-build/moonwatch}
src=$(pwd)
tmp=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
"$bin" lua "$src/tests/e2e/fixtures/loki_receiver.lua" "$port" count >"$tmp/receiver.log" 2>&1 &
rpid=$!
pids="$rpid"
until curl -sf "http://127.0.0.1:$port/ready" >/dev/null; do sleep 0.1; done
cat >"$tmp/bench.lua" <<EOF2
test.logseq "s" { file = "$tmp/seq", per_tick = 2000, interval = "0s", line_bytes = $bytes,
  stop_after = $entries, forward_to = { loki.write.w.receiver } }
loki.write "w" { endpoint = { url = "http://127.0.0.1:$port/loki/api/v1/push" } }
EOF2
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)
start=$(date +%s.%N)
"$bin" run --server.http.listen-addr=127.0.0.1:0 --storage.path="$tmp/data" \
  --component.path="$src/tests/lua/fixtures/components" "$tmp/bench.lua" >"$tmp/run.log" 2>&1 &
mpid=$!
pids="$pids $mpid"
r0=$(cpu $rpid)
got=0
while [ "$got" -lt "$entries" ]; do
  sleep 0.2
  got=$(curl -s "http://127.0.0.1:$port/count" | python3 -c 'import json,sys; print(json.load(sys.stdin)["entries"])')
done
end=$(date +%s.%N)
m=$(cpu $mpid)
r1=$(cpu $rpid)
reqs=$(curl -s "http://127.0.0.1:$port/count")
python3 - "$entries" "$bytes" "$start" "$end" "$m" "$r0" "$r1" "$tck" "$reqs" <<'EOF3'
import json, sys
n, b, s, e, m, r0, r1, tck = map(float, sys.argv[1:9])
c = json.loads(sys.argv[9])
w = e - s
print(f"{int(n)} entries of {int(b)} bytes in {w:.2f} s: {n / w:,.0f} entries/s ({n * b / w / 1e6:.0f} MB/s of lines)")
print(f"moonwatch: {m / tck / (n / 1e6):.3f} CPU s per million entries (source + loki.write)")
print(f"receiver:  {(r1 - r0) / tck / (n / 1e6):.3f} CPU s per million entries;"
      f" {int(c['requests'])} requests, {c['bytes'] / n:.1f} wire bytes/entry")
EOF3
