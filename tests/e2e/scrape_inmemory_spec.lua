-- End-to-end: prometheus.scrape of an in-memory exporter target into prometheus.echo.
local proc = require("helpers.proc")

local tmp = proc.tmpdir()

local function read(path)
  local f = io.open(path)
  if not f then
    return ""
  end
  local s = f:read("*a")
  f:close()
  return s
end

describe("prometheus.scrape of prometheus.exporter.self", function()
  it("forwards samples with target labels and report series, and no staleness marker on stop", function()
    local out = tmp .. "/echo.txt"
    local file = proc.write(tmp .. "/p.lua", string.format([[
prometheus.exporter.self "default" {}
prometheus.scrape "self" {
  targets         = prometheus.exporter.self.default.targets,
  forward_to      = { prometheus.echo.out.receiver },
  scrape_interval = "1s",
  scrape_timeout  = "1s",
  extra_metrics   = true,
}
prometheus.echo "out" { file = %q }
]], out))
    local h = proc.start_run(file)
    local host = io.open("/proc/sys/kernel/hostname"):read("*l")
    local deadline = os.time() + 10
    local _, ups = read(out):gsub("\nup{", "")
    while ups < 2 and os.time() < deadline do
      os.execute("sleep 0.2")
      _, ups = read(out):gsub("\nup{", "")
    end
    assert.is_true(ups >= 2, read(out))
    local text = read(out)
    local target = 'instance="' .. host .. '",job="integrations/self"'
    assert.matches("\nup{" .. target .. "} 1 %d+\n", text)
    assert.matches("\nscrape_samples_scraped{" .. target .. "} %d+ %d+\n", text)
    assert.matches("\nscrape_timeout_seconds{" .. target .. "} 1 %d+\n", text)
    assert.matches("\nscrape_body_size_bytes{" .. target .. "} %d+ %d+\n", text)
    assert.matches('moonwatch_build_info{' .. target:gsub("%-", "%%-") .. ',luajit="LuaJIT 2%.1', text)
    -- no __ labels leak into the samples
    assert.is_nil(text:find("__meta_", 1, true))
    assert.is_nil(text:find("__address__", 1, true))
    -- the debug info shows the target
    local _, body = proc.http("GET", h.base .. "/api/v0/components/prometheus.scrape.self")
    local info = require("cjson").decode(body).debug_info
    assert.equals("up", info.targets[1].health)
    assert.equals("", info.targets[1].last_error)
    assert.equals("http://moonwatch.internal:12345/api/v0/component/prometheus.exporter.self.default/metrics",
      info.targets[1].url)
    h.kill("TERM")
    assert.equals(0, h.wait(10))
    -- as Prometheus at shutdown: no staleness marker, the series carry on after a restart
    assert.is_nil(read(out):find(" NaN ", 1, true))
  end)

  it("writes up 0 with every report series when a label limit or target_limit fails the scrapes", function()
    local out = tmp .. "/limits.txt"
    local file = proc.write(tmp .. "/limits.lua", string.format([[
prometheus.exporter.self "default" {}
-- the exporter's target as instances of job `label`
local function targets(label, instances)
  return function()
    local out = {}
    for _, instance in ipairs(instances) do
      for _, t in ipairs(prometheus.exporter.self.default.targets) do
        local c = {}
        for k, v in pairs(t) do
          c[k] = v
        end
        c.job, c.instance = label, instance
        out[#out + 1] = c
      end
    end
    return out
  end
end
local function scrape(label, extra, instances)
  local args = {
    targets         = targets(label, instances or { "self" }),
    forward_to      = { prometheus.echo.out.receiver },
    scrape_interval = "1s",
    scrape_timeout  = "1s",
    extra_metrics   = true,
  }
  for k, v in pairs(extra) do
    args[k] = v
  end
  prometheus.scrape(label)(args)
end
scrape("labels", { label_limit = 2 })
scrape("names", { label_name_length_limit = 5 })
scrape("values", { label_value_length_limit = 3 })
scrape("targets", { target_limit = 1 }, { "a", "b" })
prometheus.echo "out" { file = %q }
]], out))
    local h = proc.start_run(file)
    finally(function()
      h.kill("KILL")
    end)
    local want = {
      { job = "labels", instance = "self" }, { job = "names", instance = "self" }, { job = "values", instance = "self" },
      { job = "targets", instance = "a" }, { job = "targets", instance = "b" },
    }
    local function up_of(w, text)
      return text:match('\nup{instance="' .. w.instance:gsub("%p", "%%%0") .. '",job="' .. w.job .. '"} (%S+) %d+\n')
    end
    local deadline = os.time() + 10
    repeat
      os.execute("sleep 0.2")
      local text, all = read(out), true
      for _, w in ipairs(want) do
        all = all and up_of(w, text) ~= nil
      end
    until all or os.time() > deadline
    local text = read(out)
    for _, w in ipairs(want) do
      assert.equals("0", up_of(w, text), w.job .. " " .. w.instance .. ":\n" .. text)
      for _, name in ipairs({ "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added",
        "scrape_timeout_seconds", "scrape_body_size_bytes" }) do
        assert.matches("\n" .. name .. '{instance="' .. w.instance:gsub("%p", "%%%0") .. '",job="' .. w.job .. '"} ',
          text)
      end
    end
    assert.is_nil(text:find("\nmoonwatch_build_info{", 1, true), "no scrape succeeded")
    -- the targets are down, with the reason; the components are healthy (their configuration is valid)
    local errors = {
      labels = "label_limit exceeded", names = "label_name_length_limit exceeded",
      values = "label_value_length_limit exceeded",
      targets = "target_limit exceeded (number of targets: 2, limit: 1)",
    }
    for job, err in pairs(errors) do
      local _, body = proc.http("GET", h.base .. "/api/v0/components/prometheus.scrape." .. job)
      local c = require("cjson").decode(body)
      assert.equals("healthy", c.health.state, job)
      for _, t in ipairs(c.debug_info.targets) do
        assert.equals("down", t.health)
        assert.is_truthy(t.last_error:find(err, 1, true), t.last_error)
      end
    end
    local _, metrics = proc.http("GET", h.base .. "/metrics")
    assert.matches('\nprometheus_target_scrape_pool_exceeded_target_limit_total{component_id="prometheus.scrape.targets"} 1\n',
      metrics)
    assert.matches('\nprometheus_target_scrape_pool_exceeded_label_limits_total{component_id="prometheus.scrape.labels"} %d',
      metrics)
    h.kill("TERM")
    assert.equals(0, h.wait(10))
  end)
end)
