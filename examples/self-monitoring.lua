-- moonwatch watching itself: its own metrics, its process, its host and its logs, scraped
-- and shipped so that a silent failure of the collector is seen.
--
--   make run          (or: moonwatch run examples/self-monitoring.lua)
--
-- With REMOTE_WRITE_URL set, the samples are shipped there (Prometheus Remote-Write,
-- through a write-ahead log under --storage.path). Without it they go to a file under
-- --storage.path (./data/self-monitoring.prom by default), so no other service is needed.
-- Likewise its own log lines: to Loki with LOKI_URL set (through loki.write's queue on
-- disk), else to ./data/self-monitoring.log.

-- Where moonwatch's own log lines go (the logging block's write_to).
local log_sink
if env("LOKI_URL") then
  loki.write "default" {
    endpoint        = { url = env("LOKI_URL") },
    external_labels = { collector = constants.hostname },
  }
  log_sink = loki.write.default.receiver
else
  loki.echo "file" { file = constants.storage_path .. "/self-monitoring.log" }
  log_sink = loki.echo.file.receiver
end

logging {
  level    = env("MOONWATCH_LOG_LEVEL", "info"),
  format   = "logfmt",
  write_to = { log_sink },
}

-- moonwatch's own metrics (the registry behind /metrics), served in memory.
prometheus.exporter.self "default" {}

-- The host, as node_exporter would show it.
prometheus.exporter.unix "host" {}

-- moonwatch's own process (process-exporter's namedprocess_* metrics), as in the
-- prometheus.exporter.process example of Alloy's reference.
prometheus.exporter.process "self" {
  track_children = false,
  matcher        = { { comm = { "moonwatch" } } },
}

-- Where the samples go: plain Lua decides which components exist.
local sink
if env("REMOTE_WRITE_URL") then
  prometheus.remote_write "default" {
    endpoint = {
      url = env("REMOTE_WRITE_URL"),
    },
    external_labels = { collector = constants.hostname },
  }
  sink = prometheus.remote_write.default.receiver
else
  prometheus.echo "file" {
    file = constants.storage_path .. "/self-monitoring.prom",
  }
  sink = prometheus.echo.file.receiver
end

prometheus.scrape "metamonitoring" {
  targets = concat(
    prometheus.exporter.unix.host.targets,
    prometheus.exporter.self.default.targets,
    prometheus.exporter.process.self.targets
  ),
  forward_to      = { sink },
  scrape_interval = env("SCRAPE_INTERVAL", "15s"),
  scrape_timeout  = env("SCRAPE_TIMEOUT", "10s"),
}
