-- Log processing with loki.process: parse JSON lines, promote a label, take the
-- entry's own timestamp, drop noise, and run a custom Lua function on each entry.
-- Send entries to loki.process.app.receiver from a logs source (its forward_to,
-- e.g. loki.source.file); here the result is written by loki.echo to stdout.
--
--   moonwatch check examples/log-processing.lua
--   moonwatch doc loki.process      (every stage and its arguments)

loki.process "app" {
  forward_to = { loki.echo.out.receiver },

  -- {"level":"warn","message":"disk almost full","ts":"2024-05-01T12:00:00.123Z","user":{"id":"42"}}
  stage.json { expressions = { level = "", msg = "message", ts = "", user = "user.id" } },
  stage.labels { values = { level = "" } },
  stage.timestamp { source = "ts", format = "RFC3339Nano", fallback_formats = { "UnixMs" } },
  stage.structured_metadata { values = { user = "" } },

  -- drop health checks; keep the message alone as the line of the other entries
  stage.match { selector = '{job="app"} |~ "GET /(healthz|ready)"', action = "drop",
    drop_counter_reason = "health_checks" },
  stage.output { source = "msg" },

  -- Custom processing in Lua: runs on every entry with the pipeline-function time budget
  -- (--pipeline.eval-timeout). entry.line, entry.labels, entry.metadata, entry.extracted,
  -- entry.sec and entry.nsec may be changed; returning false drops the entry (counted in
  -- loki_process_dropped_lines_total{reason="lua_stage"}). An error keeps the entry as it was.
  stage.lua { fn = function(entry)
    if entry.labels.level == "debug" then
      return false
    end
    -- mask e-mail addresses
    entry.line = entry.line:gsub("[%w._%-]+@[%w.%-]+", "<email>")
    -- one label for a severity family
    local lvl = entry.labels.level
    entry.labels.severity = (lvl == "error" or lvl == "fatal") and "high" or "low"
  end },
}

loki.echo "out" {}
