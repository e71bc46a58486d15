-- End-to-end: prometheus.relabel under series churn, through `moonwatch run`. 20
-- targets whose 1,000 series get new names at every scrape go through one `replace`
-- rule: the relabel cache must stay within max_cache_size (it empties itself when it
-- would grow past it) and the agent's memory must stop growing. Here for ~15 s (the
-- leak of issue 16 grew RSS by ~9 MiB/s here); MOONWATCH_CHURN_SECONDS=N (`make soak-churn`) runs it for N seconds and
-- prints RSS over time.
local proc = require("helpers.proc")
local cjson = require("cjson")

local tmp = proc.tmpdir()
local SECONDS = tonumber(os.getenv("MOONWATCH_CHURN_SECONDS") or "") or 15
local LONG = os.getenv("MOONWATCH_CHURN_SECONDS") ~= nil
local MAX = 100000 -- the default: 20 x 2,005 live entries fit, so only the churn can fill it

local function rss_kib(pid)
  local f = io.open("/proc/" .. pid .. "/status")
  local s = f and f:read("*a") or ""
  if f then
    f:close()
  end
  return tonumber(s:match("VmRSS:%s*(%d+)")) or 0
end

local function debug_info(h)
  local status, body = proc.http("GET", h.base .. "/api/v0/components/prometheus.relabel.churn")
  assert.equals(200, status)
  return cjson.decode(body).debug_info
end

local function metric(h, name)
  local _, body = proc.http("GET", h.base .. "/metrics")
  return tonumber(body:match("\n" .. name .. "{[^}]*} (%S+)"))
end

describe("prometheus.relabel under series churn", function()
  local h
  teardown(function()
    if h then
      h.kill("KILL")
    end
    proc.kill_spawned()
  end)

  it("keeps its cache and the agent's memory bounded", function()
    local port = proc.free_port()
    proc.spawn(string.format("%s lua %s/tests/e2e/fixtures/churn_target.lua %d 1000 20", proc.quote(proc.bin),
      proc.source, port))
    proc.wait_http("http://127.0.0.1:" .. port .. "/-/ready")
    local targets = {}
    for k = 1, 20 do
      targets[k] = string.format('{ __address__ = "127.0.0.1:%d", __metrics_path__ = "/t%d" }', port, k)
    end
    local file = proc.write(tmp .. "/churn.lua", string.format([[
prometheus.scrape "churn" {
  targets         = { %s },
  forward_to      = { prometheus.relabel.churn.receiver },
  scrape_interval = "%s",
  scrape_timeout  = "%s",
}
prometheus.relabel "churn" {
  forward_to     = {},
  max_cache_size = %d,
  rule = { { source_labels = { "__name__" }, regex = "churn_(\\d+)_(.*)", target_label = "generation",
             replacement = "$1" } },
}
]], table.concat(targets, ", "), LONG and "1s" or "250ms", LONG and "1s" or "250ms", MAX))
    h = proc.start_run(file)
    local t0 = os.time()
    local samples = {}
    local max_size = 0
    while os.time() - t0 < SECONDS do
      os.execute("sleep 1")
      local info = debug_info(h)
      local size = math.max(info.cache_size, info.output_series)
      if size > max_size then
        max_size = size
      end
      samples[#samples + 1] = { t = os.time() - t0, rss = rss_kib(h.pid), size = size }
      if os.getenv("MOONWATCH_CHURN_VERBOSE") or (LONG and #samples % 10 == 0) then
        io.stderr:write(string.format("t=%ds rss=%.1f MiB cache_size=%d\n", samples[#samples].t,
          samples[#samples].rss / 1024, size))
      end
    end
    local misses = metric(h, "prometheus_relabel_cache_misses")
    -- the churn went through: most of the 20 x 1,000 series of each scrape were misses
    assert.is_true(misses > 20000 * (SECONDS / (LONG and 2 or 0.5)) / 2, "misses: " .. tostring(misses))
    assert.is_true(max_size <= MAX, "cache_size " .. max_size .. " > max_cache_size " .. MAX)
    assert.is_true(metric(h, "prometheus_relabel_cache_size") <= MAX)
    -- label symbols (each name and value once in the process) go with the last series that
    -- uses them: at most the names the cache's outputs and the live scrapes hold, while the
    -- run saw misses / 20 distinct names (checked under ASan too: no RSS involved)
    local _, body = proc.http("GET", h.base .. "/metrics")
    local symbols = tonumber(body:match("\nmoonwatch_label_symbols (%S+)"))
    local bound = MAX / 20 + 5000
    assert.is_true(misses / 20 > bound, "too few new names to tell: " .. misses / 20)
    assert.is_true(symbols > 1000 and symbols <= bound,
      string.format("moonwatch_label_symbols %s after %d distinct names (bound %d)", tostring(symbols),
        misses / 20, bound))
    -- memory: what the agent holds after a third of the run is what it holds at the end
    -- (not under ASan, whose quarantine keeps freed memory resident)
    if proc.sanitized() then
      return
    end
    local third = samples[math.floor(#samples / 3)].rss
    local last = samples[#samples].rss
    assert.is_true(last - third < 40 * 1024,
      string.format("RSS grew from %.1f MiB to %.1f MiB", third / 1024, last / 1024))
  end)
end)
