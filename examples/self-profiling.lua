-- moonwatch profiling itself, as the self-monitoring guide's section 4 does with Alloy: its own
-- /debug/pprof scraped with pyroscope.scrape (CPU profiles of scrape_interval - 1s, the Lua and
-- the C heap, its Lua tasks) and shipped to Pyroscope with pyroscope.write.
--
--   PYROSCOPE_URL=http://pyroscope:4040 moonwatch run examples/self-profiling.lua
--
-- MOONWATCH_ADDR is where this moonwatch serves HTTP (--server.http.listen-addr).

pyroscope.scrape "moonwatch_profiling" {
  targets = {
    { __address__ = env("MOONWATCH_ADDR", "127.0.0.1:12345"), job = "moonwatch" },
  },
  forward_to = { pyroscope.write.pyroscope_endpoint.receiver },
}

pyroscope.write "pyroscope_endpoint" {
  endpoint = {
    url = env("PYROSCOPE_URL", "http://127.0.0.1:4040"),
  },
  external_labels = { collector = constants.hostname },
}
