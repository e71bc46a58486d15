#!/bin/sh
# remote_write_bench.sh [SECONDS]: end-to-end scrape -> remote_write benchmark.
#
# 50 targets x 2,000 series (tests/bench/targets.lua) scraped every 1s and shipped
# by remote write into one VictoriaMetrics single-node, by moonwatch, by Prometheus
# in agent mode and by vmagent (Debian packages `prometheus` and `victoria-metrics`).
# For each collector: CPU seconds (utime+stime of the collector's process, from
# /proc/PID/stat) over SECONDS (default 30) after a warm-up, the samples that
# VictoriaMetrics stored for it with timestamps in that window, CPU seconds per
# million samples delivered, and RSS (peak = VmHWM, end = VmRSS at the end of the
# window), and remote-write requests per second (from its own metrics). Ratios against vmagent (the target: moonwatch <= 0.5 on both).
#
# The collectors run one after the other (not at once) so that none competes with
# another for the cores, and the targets server serves one collector, not three; each
# uses its own job label (moonwatch, prometheus, vmagent), so their series never
# clash in the shared VictoriaMetrics and each count is a query by job. The targets
# share one address, so each gets instance="tN" (else the up/scrape_* series of the
# 50 targets would be one series). Every collector runs with its remote-write defaults.
#
# Everything listens on 127.0.0.1 on free ports and keeps its data in one temp
# directory; every process started is stopped on exit. No systemd service is used.
#
# Run from the repository root after a build:
#   tests/bench/remote_write_bench.sh [SECONDS]
# Environment:
#   MOONWATCH_BIN  moonwatch binary (default build/moonwatch)
#   WARMUP         warm-up seconds per collector (default 10)
#   DRAIN          seconds after the window before counting, so that samples of the
#                  window still queued are delivered (default 7; batch_send_deadline
#                  of moonwatch and Prometheus is 5s)
#   COLLECTORS     which to run, in order (default "moonwatch prometheus vmagent")
#   TARGETS, SERIES  targets and series per target (default 50, 2000)
#   PERF_OUT       if set, perf record moonwatch (DWARF call graphs) for PERF_SECS
#                  (default 10) seconds after its window (not counted: it replaces the
#                  drain) and write the reports (self, inclusive, by DSO) to this file
#   KEEP_TMP=1     keep the temp directory (logs, configs) and print its path
set -eu

secs=${1:-30}
warm=${WARMUP:-10}
drain=${DRAIN:-7}
bin=${MOONWATCH_BIN:-build/moonwatch}
collectors=${COLLECTORS:-moonwatch prometheus vmagent}
ntargets=${TARGETS:-50}
nseries=${SERIES:-2000}
perf_secs=${PERF_SECS:-10}

for c in curl victoria-metrics; do
  command -v "$c" >/dev/null || { echo "remote_write_bench: $c not found" >&2; exit 1; }
done
case " $collectors " in *" prometheus "*)
  command -v prometheus >/dev/null || { echo "remote_write_bench: prometheus not found (apt-get install prometheus)" >&2; exit 1; } ;;
esac
case " $collectors " in *" vmagent "*)
  command -v vmagent >/dev/null || { echo "remote_write_bench: vmagent not found (apt-get install victoria-metrics)" >&2; exit 1; } ;;
esac
[ -x "$bin" ] || { echo "remote_write_bench: $bin not found; build first or set MOONWATCH_BIN" >&2; exit 1; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rwbench.XXXXXX")
pids=""

# Stops one process: TERM, then KILL after 10 s.
stop() {
  kill "$1" 2>/dev/null || return 0
  i=0
  while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  # forget it, so that cleanup never signals a reused pid
  rest=""
  for p in $pids; do [ "$p" = "$1" ] || rest="$rest $p"; done
  pids=$rest
}
cleanup() {
  trap - EXIT INT TERM
  for q in $pids; do stop "$q"; done
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
  else
    awk -v s="$$" 'BEGIN { srand(s); print 20000 + int(rand() * 40000) }'
  fi
}
wait_http() { # URL PID: until URL answers 2xx, or the process dies, or 30 s
  i=0
  until curl -sf -o /dev/null "$1"; do
    kill -0 "$2" 2>/dev/null || { echo "remote_write_bench: process for $1 exited" >&2; return 1; }
    i=$((i + 1))
    [ $i -lt 300 ] || { echo "remote_write_bench: no answer from $1" >&2; return 1; }
    sleep 0.1
  done
}
now() { date +%s.%N; }
# Remote-write requests a collector has sent so far, from its own /metrics (0 if unknown).
requests_sent() { # NAME PORT
  case $1 in
    vmagent) m=vmagent_remotewrite_requests_total ;;
    *) m=prometheus_remote_storage_sent_batch_duration_seconds_count ;;
  esac
  curl -sf "http://127.0.0.1:$2/metrics" | awk -v m="$m" 'index($0, m "{") == 1 { n += $NF } END { printf "%d", n }'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

# The value of a one-element instant vector, 0 if empty.
vm_query() { # QUERY TIME
  curl -sf --get "$vm/api/v1/query" --data-urlencode "query=$1" --data-urlencode "time=$2" |
    sed -n 's/.*"value":\[[^,]*,"\([^"]*\)".*/\1/p' | awk '{ v = $1 } END { print (v == "" ? 0 : v) }'
}

# --- targets and receiver --------------------------------------------------------
tport=$(free_port)
"$bin" lua tests/bench/targets.lua "$tport" "$ntargets" "$nseries" 2>"$tmp/targets.log" &
tpid=$!
pids="$pids $tpid"
wait_http "http://127.0.0.1:$tport/t1" "$tpid"

vport=$(free_port)
vm="http://127.0.0.1:$vport"
# latencyOffset=0: samples are queryable as soon as they are flushed (force_flush).
victoria-metrics -httpListenAddr="127.0.0.1:$vport" -storageDataPath="$tmp/vm" -retentionPeriod=100y \
  -search.disableCache -search.latencyOffset=0s -search.maxUniqueTimeseries=1000000 \
  >"$tmp/vm.log" 2>&1 &
vpid=$!
pids="$pids $vpid"
wait_http "$vm/health" "$vpid"
rw_url="$vm/api/v1/write"

# --- collector configurations -----------------------------------------------------
mw_targets=""
yaml_targets=""
i=1
while [ $i -le "$ntargets" ]; do
  mw_targets="$mw_targets
    { __address__ = \"127.0.0.1:$tport\", __metrics_path__ = \"/t$i\", instance = \"t$i\" },"
  yaml_targets="$yaml_targets
      - targets: [\"127.0.0.1:$tport\"]
        labels: { __metrics_path__: \"/t$i\", instance: \"t$i\" }"
  i=$((i + 1))
done

cat >"$tmp/moonwatch.lua" <<LUA
prometheus.scrape "bench" {
  targets = { $mw_targets
  },
  job_name = "moonwatch",
  forward_to = { prometheus.remote_write.vm.receiver },
  scrape_interval = "1s",
  scrape_timeout = "1s",
}
prometheus.remote_write "vm" {
  endpoint = { { url = "$rw_url" } },
}
LUA

scrape_yaml() { # JOB
  cat <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: $1
    static_configs:$yaml_targets
YAML
}
{ scrape_yaml prometheus; printf 'remote_write:\n  - url: %s\n' "$rw_url"; } >"$tmp/prometheus.yml"
scrape_yaml vmagent >"$tmp/vmagent.yml"

start_collector() { # NAME; sets cpid
  port=$(free_port)
  case $1 in
    moonwatch)
      "$bin" run --server.http.listen-addr="127.0.0.1:$port" --storage.path="$tmp/moonwatch-data" \
        "$tmp/moonwatch.lua" >"$tmp/moonwatch.log" 2>&1 &
      cpid=$! ;;
    prometheus)
      prometheus --enable-feature=agent --config.file="$tmp/prometheus.yml" \
        --storage.agent.path="$tmp/prometheus-data" --web.listen-address="127.0.0.1:$port" \
        >"$tmp/prometheus.log" 2>&1 &
      cpid=$! ;;
    vmagent)
      vmagent -promscrape.config="$tmp/vmagent.yml" -remoteWrite.url="$rw_url" \
        -remoteWrite.tmpDataPath="$tmp/vmagent-data" -httpListenAddr="127.0.0.1:$port" \
        >"$tmp/vmagent.log" 2>&1 &
      cpid=$! ;;
    *) echo "remote_write_bench: unknown collector $1" >&2; exit 1 ;;
  esac
  pids="$pids $cpid"
  sleep 0.5
  kill -0 "$cpid" 2>/dev/null || { echo "remote_write_bench: $1 exited:" >&2; tail -20 "$tmp/$1.log" >&2; exit 1; }
}

# --- runs ---------------------------------------------------------------------------
: >"$tmp/results"
for name in $collectors; do
  start_collector "$name"
  echo "$name (pid $cpid): warm-up ${warm}s, window ${secs}s, drain ${drain}s" >&2
  sleep "$warm"
  kill -0 "$cpid" 2>/dev/null || { echo "remote_write_bench: $name exited:" >&2; tail -20 "$tmp/$name.log" >&2; exit 1; }
  t0=$(now); c0=$(cpu_ticks "$cpid"); tc0=$(cpu_ticks "$tpid"); vc0=$(cpu_ticks "$vpid"); q0=$(requests_sent "$name" "$port")
  sleep "$secs"
  t1=$(now); c1=$(cpu_ticks "$cpid"); tc1=$(cpu_ticks "$tpid"); vc1=$(cpu_ticks "$vpid"); q1=$(requests_sent "$name" "$port")
  rss_end=$(status_kib "$cpid" VmRSS); rss_peak=$(status_kib "$cpid" VmHWM)
  if [ -n "${PERF_OUT:-}" ] && [ "$name" = moonwatch ]; then
    echo "moonwatch: perf record for ${perf_secs}s" >&2
    # DWARF call graphs: the build has no frame pointers
    perf record --call-graph dwarf,16384 -F 499 -o "$tmp/perf.data" -p "$cpid" -- sleep "$perf_secs" \
      >/dev/null 2>&1 || true
    { perf report -i "$tmp/perf.data" --stdio --no-children --sort dso,sym -g none --percent-limit 0.5
      perf report -i "$tmp/perf.data" --stdio --children --sort sym -g none --percent-limit 2
      perf report -i "$tmp/perf.data" --stdio --no-children --sort dso -g none
    } >"$PERF_OUT" 2>/dev/null || true
    drain_left=0
  else
    drain_left=$drain
  fi
  sleep "$drain_left"
  curl -sf -o /dev/null "$vm/internal/force_flush"
  sleep 1
  win_ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", (b - a) * 1000 }')
  samples=$(vm_query "sum(count_over_time({job=\"$name\"}[${win_ms}ms]))" "$t1")
  up=$(vm_query "sum(max_over_time(up{job=\"$name\"}[${win_ms}ms]))" "$t1")
  stop "$cpid"
  echo "$name $c0 $c1 $t0 $t1 $samples $rss_peak $rss_end $up $tc0 $tc1 $vc0 $vc1 $q0 $q1" >>"$tmp/results"
done

# --- report -------------------------------------------------------------------------
awk -v hz="$hz" -v nt="$ntargets" -v ns="$nseries" -v secs="$secs" '
{
  n = $1; name[NR] = n
  cpu[n] = ($3 - $2) / hz; wall[n] = $5 - $4; smp[n] = $6; peak[n] = $7 / 1024; rend[n] = $8 / 1024; up[n] = $9
  tcpu[n] = ($11 - $10) / hz; vcpu[n] = ($13 - $12) / hz; reqs[n] = $15 - $14
  per[n] = smp[n] > 0 ? cpu[n] / (smp[n] / 1e6) : 0
}
END {
  printf "scrape -> remote_write, %d targets x %d series @1s into VictoriaMetrics, window %ds (one collector at a time)\n\n", nt, ns, secs
  printf "%-11s %8s %7s %12s %10s %10s %9s %8s %8s %8s %8s\n", "collector", "CPU s", "core%", "samples", "CPU s/M", "RSS peak", "RSS end", "up", "tgt CPU", "VM CPU", "req/s"
  for (i = 1; i <= NR; i++) {
    n = name[i]
    printf "%-11s %8.2f %6.1f%% %12d %10.3f %9.1fM %8.1fM %8d %8.2f %8.2f %8.1f\n", n, cpu[n], 100 * cpu[n] / wall[n], smp[n], per[n], peak[n], rend[n], up[n], tcpu[n], vcpu[n], reqs[n] / wall[n]
  }
  printf "\n(samples: stored by VictoriaMetrics for the job with timestamps in the window; expected about %d per collector;\n CPU s/M: CPU seconds per million samples delivered; RSS in MiB; up: targets up; tgt/VM CPU: CPU s of the targets server and VictoriaMetrics in the window;\n req/s: remote-write requests the collector sent per second, from its own metrics)\n", nt * (ns + 5) * secs
  if (("moonwatch" in cpu) && ("vmagent" in cpu) && per["vmagent"] > 0) {
    printf "\nmoonwatch/vmagent: CPU per sample %.2f, RSS peak %.2f, RSS end %.2f (target <= 0.50 each)\n", per["moonwatch"] / per["vmagent"], peak["moonwatch"] / peak["vmagent"], rend["moonwatch"] / rend["vmagent"]
  }
  if (("moonwatch" in cpu) && ("prometheus" in cpu) && per["prometheus"] > 0) {
    printf "moonwatch/prometheus: CPU per sample %.2f, RSS peak %.2f, RSS end %.2f\n", per["moonwatch"] / per["prometheus"], peak["moonwatch"] / peak["prometheus"], rend["moonwatch"] / rend["prometheus"]
  }
  printf "\n"
}' "$tmp/results"
