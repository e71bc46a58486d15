#!/bin/sh
# remote_write_bench.sh [SCENARIO...]: end-to-end scrape -> remote_write benchmark of
# moonwatch against vmagent, in one run, on the same targets and the same receiver.
#
# Scenarios (default: all three, in this order), TARGETSxSERIES@INTERVAL:
#   50x2000@1s    100k samples/s, 100k active series
#   200x2000@1s   400k samples/s, 400k active series
#   200x2000@5s   80k samples/s, 400k active series
# Any TARGETSxSERIES@INTERVAL can be given instead.
#
# Targets: nginx serves node_exporter-like bodies (tests/bench/nodelike_bodies.lua: the
# families of a real node_exporter 1.5 body, each sample repeated with a replica label up to
# SERIES series), gzip-compressed in advance (gzip_static), at /t1 ... /tN; ten versions of
# the body with different values take turns every 100 ms, so successive scrapes see new
# values. Serving costs next to no CPU. Receiver: one VictoriaMetrics single-node.
#
# Per scenario, each collector in turn (never both at once: they would compete for the two
# cores), with its remote-write defaults and scrape_timeout = scrape_interval:
#   warm-up WARMUP s, then a window of WINDOW s (default 60 s, 120 s at intervals of 5 s and
#   more, so that each target is scraped at least 24 times), then DRAIN s for what was queued.
# Reported per collector:
#   delivered  samples of the targets' series that VictoriaMetrics stored with timestamps in
#              the window / samples nginx served in the window (requests in its access log x
#              SERIES); a collector that stalls shows it here
#   CPU s/M    CPU seconds (utime + stime, /proc/PID/stat) in the window per million
#              samples delivered
#   RSS        at the end of the window and the peak (VmHWM), MiB
#   B/series   RSS at the end / active series (TARGETS x SERIES)
#   req/s      remote-write requests per second (its own metrics)
# and moonwatch / vmagent for CPU per sample and RSS (the target: <= 0.5 each).
#
# Everything listens on 127.0.0.1 on free ports and keeps its data in one temp directory;
# every process started is stopped on exit. Run from the repository root after a build:
#   tests/bench/remote_write_bench.sh                    # the three scenarios (~15 min)
#   tests/bench/remote_write_bench.sh 200x2000@5s        # one
# Environment:
#   MOONWATCH_BIN  moonwatch binary (default build/moonwatch)
#   COLLECTORS     which to run, in order (default "moonwatch vmagent"; "prometheus" adds
#                  Prometheus in agent mode)
#   WARMUP, WINDOW, DRAIN  seconds (defaults 20, see above, 10)
#   PERF_OUT       if set, perf record moonwatch (DWARF call graphs) for PERF_SECS (default
#                  10) after its window and write the reports to PERF_OUT.SCENARIO
#   PPROF_OUT      if set, take moonwatch's own CPU profile (/debug/pprof/profile: C and Lua
#                  stacks) for PERF_SECS after its window into PPROF_OUT.SCENARIO.pb.gz
#   KEEP_TMP=1     keep the temp directory (logs, configs) and print its path
set -eu

bin=${MOONWATCH_BIN:-build/moonwatch}
collectors=${COLLECTORS:-moonwatch vmagent}
warm=${WARMUP:-20}
drain=${DRAIN:-10}
perf_secs=${PERF_SECS:-10}
scenarios=${*:-50x2000@1s 200x2000@1s 200x2000@5s}
src=$(cd "$(dirname "$0")/../.." && pwd)

for c in curl gzip nginx victoria-metrics vmagent; do
  command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] ||
    { echo "remote_write_bench: $c not found (apt-get install curl gzip nginx-light victoria-metrics)" >&2; exit 1; }
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
case " $collectors " in *" prometheus "*)
  command -v prometheus >/dev/null || { echo "remote_write_bench: prometheus not found (apt-get install prometheus)" >&2; exit 1; } ;;
esac
[ -x "$bin" ] || { echo "remote_write_bench: $bin not found; build first or set MOONWATCH_BIN" >&2; exit 1; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rwbench.XXXXXX")
chmod 755 "$tmp" # nginx's worker may run as another user
pids=""

# Stops one process: TERM, then KILL after 10 s.
stop() {
  kill "$1" 2>/dev/null || return 0
  i=0
  while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
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
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    awk -v s="$$$(date +%N)" 'BEGIN { srand(s); print 20000 + int(rand() * 40000) }'
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
requests_sent() { # NAME PORT: remote-write requests sent so far, from its own /metrics
  case $1 in
    vmagent) m=vmagent_remotewrite_requests_total ;;
    *) m=prometheus_remote_storage_sent_batch_duration_seconds_count ;;
  esac
  curl -sf "http://127.0.0.1:$2/metrics" | awk -v m="$m" 'index($0, m "{") == 1 { n += $NF } END { printf "%d", n }'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
vm_query() { # QUERY TIME: the value of a one-element instant vector, 0 if empty
  curl -sf --get "$vm/api/v1/query" --data-urlencode "query=$1" --data-urlencode "time=$2" |
    sed -n 's/.*"value":\[[^,]*,"\([^"]*\)".*/\1/p' | awk '{ v = $1 } END { print (v == "" ? 0 : v) }'
}

# --- receiver and targets ------------------------------------------------------------
vport=$(free_port)
vm="http://127.0.0.1:$vport"
# latencyOffset=0: samples are queryable as soon as they are flushed (force_flush).
victoria-metrics -httpListenAddr="127.0.0.1:$vport" -storageDataPath="$tmp/vm" -retentionPeriod=100y \
  -search.disableCache -search.latencyOffset=0s -search.maxUniqueTimeseries=10000000 \
  -search.maxSamplesPerQuery=10000000000 >"$tmp/vm.log" 2>&1 &
vpid=$!
pids="$pids $vpid"
wait_http "$vm/health" "$vpid"
rw_url="$vm/api/v1/write"

nport=$(free_port)
mkdir -p "$tmp/www" "$tmp/nginx"
start_nginx() { # SERIES
  rm -f "$tmp/www/"body*
  "$bin" lua "$src/tests/bench/nodelike_bodies.lua" "$src/tests/fuzz/corpus/exposition/node_exporter-1.5.0.prom" \
    "$tmp/www" "$1" 10 2>>"$tmp/bodies.log" ||
    { echo "remote_write_bench: making the target bodies failed:" >&2; cat "$tmp/bodies.log" >&2; exit 1; }
  for f in "$tmp/www/"body?; do gzip -9 -f "$f"; done
  chmod -R a+rX "$tmp/www"
  cat >"$tmp/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 4096; }
http {
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  log_format served '\$msec \$status';
  access_log $tmp/nginx/access.log served buffer=64k flush=1s;
  # the tenth of a second picks one of the ten bodies
  map \$msec \$version { "~\\.(?<d>[0-9])" \$d; }
  server {
    listen 127.0.0.1:$nport;
    root $tmp/www;
    location ~ ^/t[0-9]+\$ { rewrite ^ /body\$version last; }
    location ~ ^/body[0-9]\$ {
      internal;
      gzip_static always;
      default_type "text/plain; version=0.0.4";
    }
  }
}
CONF
  "$nginx_bin" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' >"$tmp/nginx/stdout.log" 2>&1 &
  npid=$!
  pids="$pids $npid"
  wait_http "http://127.0.0.1:$nport/t1" "$npid"
}

# --- collector configurations ----------------------------------------------------------
write_configs() { # TARGETS INTERVAL JOBPREFIX
  mw_targets=""
  yaml_targets=""
  i=1
  while [ "$i" -le "$1" ]; do
    mw_targets="$mw_targets
    { __address__ = \"127.0.0.1:$nport\", __metrics_path__ = \"/t$i\", instance = \"t$i\" },"
    yaml_targets="$yaml_targets
      - targets: [\"127.0.0.1:$nport\"]
        labels: { __metrics_path__: \"/t$i\", instance: \"t$i\" }"
    i=$((i + 1))
  done
  cat >"$tmp/moonwatch.lua" <<LUA
prometheus.scrape "bench" {
  targets = { $mw_targets
  },
  job_name = "$3-moonwatch",
  forward_to = { prometheus.remote_write.vm.receiver },
  scrape_interval = "$2",
  scrape_timeout = "$2",
}
prometheus.remote_write "vm" {
  endpoint = { { url = "$rw_url" } },
}
LUA
  for job in prometheus vmagent; do
    cat >"$tmp/$job.yml" <<YAML
global:
  scrape_interval: $2
  scrape_timeout: $2
scrape_configs:
  - job_name: $3-$job
    static_configs:$yaml_targets
YAML
  done
  printf 'remote_write:\n  - url: %s\n' "$rw_url" >>"$tmp/prometheus.yml"
}

start_collector() { # NAME; sets cpid, port
  port=$(free_port)
  rm -rf "$tmp/$1-data"
  case $1 in
    moonwatch)
      "$bin" run --server.http.listen-addr="127.0.0.1:$port" --storage.path="$tmp/$1-data" \
        "$tmp/moonwatch.lua" >"$tmp/$1.log" 2>&1 &
      cpid=$! ;;
    prometheus)
      prometheus --enable-feature=agent --config.file="$tmp/prometheus.yml" \
        --storage.agent.path="$tmp/$1-data" --web.listen-address="127.0.0.1:$port" \
        >"$tmp/$1.log" 2>&1 &
      cpid=$! ;;
    vmagent)
      vmagent -promscrape.config="$tmp/vmagent.yml" -remoteWrite.url="$rw_url" \
        -remoteWrite.tmpDataPath="$tmp/$1-data" -httpListenAddr="127.0.0.1:$port" \
        >"$tmp/$1.log" 2>&1 &
      cpid=$! ;;
    *) echo "remote_write_bench: unknown collector $1" >&2; exit 1 ;;
  esac
  pids="$pids $cpid"
  sleep 0.5
  kill -0 "$cpid" 2>/dev/null || { echo "remote_write_bench: $1 exited:" >&2; tail -20 "$tmp/$1.log" >&2; exit 1; }
}

served() { # T0 T1: bodies served (200) in [T0, T1]
  awk -v a="$1" -v b="$2" '$2 == 200 && $1 >= a && $1 <= b { n++ } END { print n + 0 }' "$tmp/nginx/access.log"
}

# --- runs ------------------------------------------------------------------------------
: >"$tmp/results"
last_series=""
for sc in $scenarios; do
  ntargets=${sc%%x*}
  rest=${sc#*x}
  nseries=${rest%%@*}
  interval=${rest#*@}
  isecs=$(echo "$interval" | sed 's/s$//')
  win=${WINDOW:-$([ "$isecs" -ge 5 ] && echo 120 || echo 60)}
  tag=$(echo "$sc" | tr 'x@' '--')
  if [ "$nseries" != "$last_series" ]; then
    [ -z "$last_series" ] || stop "$npid"
    start_nginx "$nseries"
    last_series=$nseries
  fi
  write_configs "$ntargets" "$interval" "$tag"
  for name in $collectors; do
    start_collector "$name"
    echo "$sc $name (pid $cpid): warm-up ${warm}s, window ${win}s, drain ${drain}s" >&2
    sleep "$warm"
    kill -0 "$cpid" 2>/dev/null || { echo "remote_write_bench: $name exited:" >&2; tail -20 "$tmp/$name.log" >&2; exit 1; }
    t0=$(now); c0=$(cpu_ticks "$cpid"); q0=$(requests_sent "$name" "$port")
    sleep "$win"
    t1=$(now); c1=$(cpu_ticks "$cpid"); q1=$(requests_sent "$name" "$port")
    rss_end=$(status_kib "$cpid" VmRSS); rss_peak=$(status_kib "$cpid" VmHWM)
    if [ -n "${PERF_OUT:-}" ] && [ "$name" = moonwatch ]; then
      echo "moonwatch: perf record for ${perf_secs}s" >&2
      perf record --call-graph dwarf,16384 -F 499 -o "$tmp/perf.data" -p "$cpid" -- sleep "$perf_secs" \
        >/dev/null 2>&1 || true
      { perf report -i "$tmp/perf.data" --stdio --no-children --sort dso,sym -g none --percent-limit 0.5
        perf report -i "$tmp/perf.data" --stdio --children --sort sym -g none --percent-limit 2
        perf report -i "$tmp/perf.data" --stdio --no-children --sort dso -g none
      } >"$PERF_OUT.$tag" 2>/dev/null || true
    fi
    if [ -n "${PPROF_OUT:-}" ] && [ "$name" = moonwatch ]; then
      echo "moonwatch: /debug/pprof/profile for ${perf_secs}s" >&2
      curl -sf -o "$PPROF_OUT.$tag.pb.gz" \
        "http://127.0.0.1:$port/debug/pprof/profile?seconds=$perf_secs" || true
    fi
    sleep "$drain"
    curl -sf -o /dev/null "$vm/internal/force_flush"
    sleep 2
    win_ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", (b - a) * 1000 }')
    got=$(vm_query "sum(count_over_time({job=\"$tag-$name\",__name__!~\"up|scrape_.+\"}[${win_ms}ms]))" "$t1")
    want=$(( $(served "$t0" "$t1") * nseries ))
    stop "$cpid"
    echo "$sc $name $c0 $c1 $t0 $t1 $got $want $rss_peak $rss_end $q0 $q1 $ntargets $nseries" >>"$tmp/results"
  done
done

# --- report ----------------------------------------------------------------------------
awk -v hz="$hz" '
{
  sc = $1; n = $2; k = sc " " n
  if (!(sc in seen)) { seen[sc] = 1; order[++nsc] = sc }
  cols[sc] = cols[sc] " " n
  cpu[k] = ($4 - $3) / hz; wall[k] = $6 - $5; got[k] = $7; want[k] = $8
  peak[k] = $9 / 1024; rend[k] = $10 / 1024; reqs[k] = $12 - $11; active[k] = $13 * $14
  per[k] = got[k] > 0 ? cpu[k] / (got[k] / 1e6) : 0
}
END {
  printf "scrape -> remote_write into VictoriaMetrics, nginx targets (node_exporter-like, gzip), one collector at a time\n\n"
  printf "%-13s %-10s %10s %12s %8s %10s %9s %9s %9s %8s\n", "scenario", "collector", "delivered", "samples", "core%", "CPU s/M", "RSS end", "RSS peak", "B/series", "req/s"
  for (i = 1; i <= nsc; i++) {
    sc = order[i]; m = split(substr(cols[sc], 2), names, " ")
    for (j = 1; j <= m; j++) {
      k = sc " " names[j]
      printf "%-13s %-10s %10.4f %12d %7.1f%% %10.3f %8.1fM %8.1fM %9.0f %8.1f\n", sc, names[j], (want[k] > 0 ? got[k] / want[k] : 0), got[k], 100 * cpu[k] / wall[k], per[k], rend[k], peak[k], rend[k] * 1048576 / active[k], reqs[k] / wall[k]
    }
    m = sc " moonwatch"; v = sc " vmagent"
    if ((m in per) && (v in per) && per[v] > 0 && rend[v] > 0)
      printf "%-13s moonwatch/vmagent: CPU per sample %.2f, RSS end %.2f, RSS peak %.2f (target <= 0.50)\n", sc, per[m] / per[v], rend[m] / rend[v], peak[m] / peak[v]
  }
  printf "\n(delivered: samples of the targets stored with timestamps in the window / samples served in it; CPU s/M: CPU seconds per\n million samples delivered; RSS in MiB; B/series: RSS end per active series; req/s: remote-write requests per second)\n"
}' "$tmp/results"
