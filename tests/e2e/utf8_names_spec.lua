-- End-to-end: Prometheus 3's quoted UTF-8 metric and label names from a scrape target
-- through `moonwatch run` (prometheus.scrape with metric_name_validation_scheme = "utf8",
-- the WAL, prometheus.remote_write) into a real Prometheus 2.42, whose remote-write
-- receiver stores label sets as they come (it checks no name grammar): every sample
-- arrives with its names, values and timestamps.
local proc = require("helpers.proc")
local cjson = require("cjson")

local tmp = proc.tmpdir()
local SRC = proc.source

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

-- The samples the target served at /utf8: { ["series ts"] = value }, count.
local function served(log)
  local out, n = {}, 0
  local f = io.open(log)
  if not f then
    return out, 0
  end
  for line in f:lines() do
    local s, v, ts = line:match("^(%d+) (%d+) (%d+)$")
    out[s .. " " .. ts] = tonumber(v)
    n = n + 1
  end
  f:close()
  return out, n
end

-- rw.utf8 as Prometheus stores it: samples { ["series ts"] = value } and label sets by series.
local function stored(port)
  local _, body = proc.http("GET", string.format("http://127.0.0.1:%d/api/v1/query?query=%s", port,
    urlencode('{__name__="rw.utf8"}[1h]')))
  local samples, sets = {}, {}
  for _, r in ipairs(cjson.decode(body).data.result) do
    sets[r.metric.series] = r.metric
    for _, v in ipairs(r.values) do
      samples[r.metric.series .. " " .. string.format("%d", math.floor(v[1] * 1000 + 0.5))] = tonumber(v[2])
    end
  end
  return samples, sets
end

describe("UTF-8 names", function()
  local pids = {}
  teardown(function()
    for _, pid in ipairs(pids) do
      os.execute("kill " .. pid .. " 2>/dev/null")
    end
  end)

  it("reach Prometheus 2.42 from a target's quoted names, through scrape, the WAL and remote_write", function()
    local log = tmp .. "/served"
    local tport, tpid = proc.start_server(string.format("exec %s lua %s/tests/e2e/fixtures/target.lua %%d %s 3",
      proc.quote(proc.bin), SRC, log), "curl -sf http://127.0.0.1:%d/metrics >/dev/null && echo ok")
    pids[#pids + 1] = tpid
    local pdir = tmp .. "/prom"
    os.execute("mkdir -p " .. pdir)
    proc.write(pdir .. "/prometheus.yml", "global:\n  scrape_interval: 1h\n")
    local pport, ppid = proc.start_server(string.format("exec prometheus --config.file=%s/prometheus.yml "
      .. "--storage.tsdb.path=%s/data --web.listen-address=127.0.0.1:%%d --web.enable-remote-write-receiver",
      pdir, pdir), "curl -sf http://127.0.0.1:%d/-/ready >/dev/null && echo ok")
    pids[#pids + 1] = ppid
    local file = proc.write(tmp .. "/utf8.lua", string.format([[
prometheus.scrape "t" {
  targets = {{ __address__ = "127.0.0.1:%d", __metrics_path__ = "/utf8" }},
  forward_to = { prometheus.remote_write.out.receiver },
  scrape_interval = "500ms",
  scrape_timeout = "500ms",
  metric_name_validation_scheme = "utf8",
}
prometheus.remote_write "out" {
  endpoint = { url = "http://127.0.0.1:%d/api/v1/write", queue_config = { batch_send_deadline = "200ms" } },
}
]], tport, pport))
    local h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data" })
    os.execute("sleep 3")
    local _, metrics = proc.http("GET", h.base .. "/metrics")
    h.kill("TERM")
    assert.equals(0, h.wait(15))
    local want, n = served(log .. ".utf8")
    assert.is_true(n >= 9, "the target was scraped " .. n / 3 .. " times")
    local got, sets
    local deadline = os.time() + 15
    repeat
      got, sets = stored(pport)
      local missing = 0
      for k, v in pairs(want) do
        if got[k] ~= v then
          missing = missing + 1
        end
      end
      if missing == 0 then
        break
      end
      os.execute("sleep 0.3")
    until os.time() > deadline
    for k, v in pairs(want) do
      assert.equals(v, got[k], "sample " .. k)
    end
    local m = 0
    for _ in pairs(got) do
      m = m + 1
    end
    assert.equals(n, m)
    for i = 1, 3 do
      assert.same({ __name__ = "rw.utf8", series = tostring(i), ["my.label"] = "v." .. i,
        ["\195\188n\195\175 code"] = "\226\152\131", job = "prometheus.scrape.t",
        instance = "127.0.0.1:" .. tport }, sets[tostring(i)])
    end
    -- nothing refused on the way
    assert.truthy(metrics:find("prometheus_remote_storage_samples_total{", 1, true))
    assert.is_nil(metrics:find("prometheus_remote_storage_samples_failed_total{[^}]*} [1-9]"))
  end)
end)
