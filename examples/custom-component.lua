-- A pipeline that uses custom components from examples/components:
--   moonwatch run --component.path=examples/components examples/custom-component.lua
logging {
  level  = "info",
  format = "logfmt",
}

-- targets from a JSON file (mycorp/file_targets.lua)
mycorp.file_targets "apps" {
  path             = env("TARGETS_FILE", "examples/targets.json"),
  refresh_interval = "10s",
  labels           = { env = "dev" },
}

-- moonwatch's own metrics, through a counting component (mycorp/sample_counter.lua)
prometheus.exporter.self "default" {}

prometheus.scrape "self" {
  targets    = prometheus.exporter.self.default.targets,
  forward_to = { mycorp.sample_counter.counted.receiver },
}

mycorp.sample_counter "counted" {
  forward_to      = { prometheus.echo.out.receiver },
  report_interval = "30s",
}

prometheus.echo "out" {}
