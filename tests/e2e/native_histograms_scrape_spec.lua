-- End-to-end, issue #19: native histograms from a real client_golang target
-- (tests/e2e/fixtures/nhtarget) scraped by `moonwatch run` (PrometheusProto) and sent by
-- prometheus.remote_write (send_native_histograms = true) into Prometheus 2.42
-- (--enable-feature=native-histograms --web.enable-remote-write-receiver), which scrapes the
-- same target itself under another job: what moonwatch forwarded must equal what Prometheus
-- stored from its own scrape (count, sum, every bucket, histogram_quantile).
local proc = require("helpers.proc")
local nhtarget = require("helpers.nhtarget")
local cjson = require("cjson")

local tmp = proc.tmpdir()

local function urlencode(s)
  return (s:gsub("[^%w%-_%.~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

-- Prometheus with its own scrape of target (job "prom") and the remote-write receiver.
local function start_prometheus(port, dir, target)
  os.execute("mkdir -p " .. dir)
  proc.write(dir .. "/prometheus.yml", string.format([[
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prom
    scrape_interval: 1s
    static_configs:
      - targets: ["%s"]
]], target))
  local pid = proc.spawn(string.format("prometheus --config.file=%s/prometheus.yml --storage.tsdb.path=%s/data "
    .. "--web.listen-address=127.0.0.1:%d --web.enable-remote-write-receiver --enable-feature=native-histograms",
    dir, dir, port), dir .. "/log")
  proc.wait_http("http://127.0.0.1:" .. port .. "/-/ready")
  return pid
end

local function query(port, q)
  local status, body = proc.http("GET", "http://127.0.0.1:" .. port .. "/api/v1/query?query=" .. urlencode(q))
  assert(status == 200, "query " .. q .. ": " .. tostring(status) .. " " .. tostring(body))
  return cjson.decode(body).data.result
end

-- The latest histogram of series sel, as Prometheus's API gives it ({ count, sum, buckets }).
local function histogram(port, sel)
  local r = query(port, sel)
  return r[1] and r[1].histogram and r[1].histogram[2]
end

local PIPELINE = [[
prometheus.scrape "nh" {
  targets                  = { { __address__ = "%s" } },
  forward_to               = { prometheus.remote_write.prom.receiver },
  job_name                 = "moonwatch",
  scrape_interval          = "1s",
  scrape_timeout           = "900ms",
  scrape_native_histograms = true,
}
prometheus.remote_write "prom" {
  endpoint = {
    url                    = "http://127.0.0.1:%d/api/v1/write",
    send_native_histograms = true,
    queue_config           = { batch_send_deadline = "100ms", min_backoff = "50ms", max_backoff = "200ms" },
  },
}
]]

describe("native histograms end to end", function()
  local target, target_pid
  teardown(function()
    proc.kill_spawned()
    if target_pid then
      os.execute("kill " .. target_pid .. " 2>/dev/null")
    end
  end)

  it("moonwatch forwards what Prometheus stores from its own scrape of the same client_golang target", function()
    target, target_pid = nhtarget.start()
    local pport = proc.free_port()
    local file = proc.write(tmp .. "/nh.lua", string.format(PIPELINE, target, pport))
    local check = proc.sh(string.format("%s check %s 2>&1", proc.quote(proc.bin), proc.quote(file)))
    if check:find("not supported yet", 1, true) then
      pending("prometheus.remote_write does not send native histograms in this build: " .. check)
      return
    end
    start_prometheus(pport, tmp .. "/prom", target)
    local mw = proc.start_run(file)
    local ok = pcall(proc.wait_for, function()
      return histogram(pport, 'latency_seconds{job="moonwatch"}') and histogram(pport, 'latency_seconds{job="prom"}')
        and histogram(pport, 'float_hist{job="moonwatch"}') and histogram(pport, 'float_hist{job="prom"}')
    end, 30, "both jobs' histograms in Prometheus")
    mw.kill("TERM")
    mw.wait(10)
    assert(ok, "no histograms of both jobs in Prometheus after 30 s; moonwatch's log:\n" .. mw.read())
    for _, name in ipairs({ "latency_seconds", "float_hist" }) do
      local ours = histogram(pport, name .. '{job="moonwatch"}')
      local theirs = histogram(pport, name .. '{job="prom"}')
      assert.same(theirs, ours) -- count, sum and every bucket ([boundary rule, lower, upper, count])
      for _, q in ipairs({ 0.1, 0.5, 0.9, 0.99 }) do
        local a = query(pport, string.format('histogram_quantile(%g, %s{job="moonwatch"})', q, name))
        local b = query(pport, string.format('histogram_quantile(%g, %s{job="prom"})', q, name))
        assert.equals(b[1].value[2], a[1].value[2])
      end
    end
    -- and they are the observations (main.go's latencyObs: 12, summing to 51.953)
    local h = histogram(pport, 'latency_seconds{job="moonwatch"}')
    assert.equals("12", h.count)
    assert.near(51.953, tonumber(h.sum), 1e-9)
    assert.equals("3.5", histogram(pport, 'float_hist{job="moonwatch"}').count)
  end)
end)
