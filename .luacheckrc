std = "luajit"
max_line_length = 130
max_string_line_length = false
codes = true
files["tests"] = { std = "+busted" }
files["examples"] = {
  -- pipeline scripts run in moonwatch's environment: component namespaces and helpers
  allow_defined_top = true,
  read_globals = { "env", "concat", "constants", "json_decode", "file", "logging", "tracing",
    "prometheus", "discovery", "loki", "local_", "mycorp", "stage", "metric",
    "hashmod_shard", "pyroscope" },
}
files["tests/lua/fixtures/pipelines"] = files["examples"]
