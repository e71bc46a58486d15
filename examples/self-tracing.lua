-- moonwatch's own traces, as the meta-monitoring guide sends Alloy's: a span for each load
-- (with one per component evaluated), each scrape, each remote_write and loki.write request and
-- each WAL truncation, sampled per trace, sent with OTLP/gRPC to Tempo (or any OTLP receiver).
--
--   TEMPO_OTLP_ENDPOINT=tempo:4317 moonwatch run examples/self-tracing.lua
--
-- otelcol.exporter.otlphttp "tempo" { client = { endpoint = "http://tempo:4318" } } sends the
-- same over OTLP/HTTP.
tracing {
  sampling_fraction = 0.1,
  write_to          = { otelcol.exporter.otlp.tempo.input },
}

otelcol.exporter.otlp "tempo" {
  client = {
    endpoint = env("TEMPO_OTLP_ENDPOINT", "127.0.0.1:4317"),
    tls      = { insecure = true }, -- a Tempo without TLS
  },
}

prometheus.exporter.self "default" {}

prometheus.scrape "metamonitoring" {
  targets    = prometheus.exporter.self.default.targets,
  forward_to = {},
}
