-- End-to-end: users' Lua code in a pipeline, through `moonwatch run` and `check`:
-- Lua function rules reach the component (relabel, remote_write refuses them),
-- a budget bounds every evaluation of user code, SIGTERM always stops the
-- process, errors of any shape name file:line, os.exit is refused, and reloads
-- do not leak.
local proc = require("helpers.proc")
local cjson = require("cjson")

local tmp = proc.tmpdir()

local function slurp(path)
  local f = io.open(path, "rb")
  local s = f and f:read("*a") or ""
  if f then
    f:close()
  end
  return s
end

-- Waits (up to timeout s) until fn() is truthy; returns its value.
local function eventually(fn, timeout)
  local deadline = os.time() + (timeout or 10)
  repeat
    local v = fn()
    if v then
      return v
    end
    os.execute("sleep 0.1")
  until os.time() > deadline
  return nil
end

local function component(h, id)
  local status, body = proc.http("GET", h.base .. "/api/v0/components/" .. id)
  assert.equals(200, status, body)
  return cjson.decode(body)
end

describe("Lua function rules through a pipeline", function()
  after_each(proc.kill_spawned)

  it("scrape -> relabel with a function rule -> echo: the function gets each label set", function()
    local out = tmp .. "/fn-echo.txt"
    local f = proc.write(tmp .. "/fn-echo.lua", string.format([[
prometheus.exporter.self "s" {}
prometheus.scrape "a" {
  targets = prometheus.exporter.self.s.targets,
  forward_to = { prometheus.relabel.r.receiver },
  scrape_interval = "1s", scrape_timeout = "1s",
}
prometheus.relabel "r" {
  forward_to = { prometheus.echo.e.receiver },
  rule = {
    { source_labels = { "__name__" }, regex = "moonwatch_build_info", action = "keep" },
    function(labels)
      labels.rule = "lua-" .. labels.job:gsub("/", "-")
      return labels
    end,
  },
}
prometheus.relabel "single" {
  forward_to = {},
  rule = function(labels) return nil end,
}
prometheus.echo "e" { file = %q }
]], out))
    local code, stdout, err = proc.run({ "check", f })
    assert.equals(0, code, err)
    assert.matches("ok (5 components)", stdout, 1, true)
    local h = proc.start_run(f, { "--storage.path=" .. tmp .. "/data-fn" })
    finally(function()
      h.kill("KILL")
    end)
    local line = eventually(function()
      return slurp(out):match("[^\n]*moonwatch_build_info[^\n]*")
    end)
    assert.truthy(line, h.read())
    assert.matches('rule="lua-integrations-self"', line, 1, true)
    -- the API names the function by where it is defined, not "{}"
    local r = component(h, "prometheus.relabel.r")
    assert.equals("(Lua function at " .. f .. ":11)", r.arguments.rule[2])
    assert.equals("keep", r.arguments.rule[1].action)
    local single = component(h, "prometheus.relabel.single")
    assert.same({ "(Lua function at " .. f .. ":19)" }, single.arguments.rule)
    assert.equals("healthy", r.health.state)
    h.kill("TERM")
    assert.equals(0, h.wait(10))
    assert.is_nil(h.read():find("level=error", 1, true), h.read())
  end)

  it("relabel with a function rule -> remote_write -> Prometheus", function()
    local pport = proc.free_port()
    proc.start_prometheus(pport, tmp .. "/prom-fn")
    local f = proc.write(tmp .. "/fn-rw.lua", string.format([[
prometheus.exporter.self "s" {}
prometheus.scrape "a" {
  targets = prometheus.exporter.self.s.targets,
  forward_to = { prometheus.relabel.r.receiver },
  scrape_interval = "1s", scrape_timeout = "1s",
}
prometheus.relabel "r" {
  forward_to = { prometheus.remote_write.p.receiver },
  rule = {
    function(labels)
      if labels.__name__ ~= "moonwatch_build_info" then return nil end
      labels.via = "lua"
      return labels
    end,
  },
}
prometheus.remote_write "p" {
  endpoint = { url = "http://127.0.0.1:%d/api/v1/write", queue_config = { batch_send_deadline = "1s" } },
}
]], pport))
    local h = proc.start_run(f, { "--storage.path=" .. tmp .. "/data-fn-rw" })
    finally(function()
      h.kill("KILL")
    end)
    local result = eventually(function()
      local _, body = proc.http("GET", "http://127.0.0.1:" .. pport .. "/api/v1/query?query=moonwatch_build_info")
      local r = cjson.decode(body).data.result
      return #r > 0 and r
    end, 20)
    h.kill("TERM")
    assert.equals(0, h.wait(15))
    assert.truthy(result, h.read())
    assert.equals(1, #result)
    assert.equals("lua", result[1].metric.via)
    local _, body = proc.http("GET", "http://127.0.0.1:" .. pport .. "/api/v1/query?query=up")
    assert.equals(0, #cjson.decode(body).data.result, "the function dropped every other series")
  end)

  it("remote_write's write_relabel_config refuses a Lua function rule at check, saying why", function()
    local f = proc.write(tmp .. "/fn-wrc.lua", [[
prometheus.remote_write "p" {
  endpoint = {
    url = "http://127.0.0.1:9/api/v1/write",
    write_relabel_config = { function(labels) return labels end },
  },
}
]])
    local code, _, err = proc.run({ "check", f })
    assert.equals(1, code)
    assert.matches(f .. ':1: prometheus.remote_write "p": endpoint: write_relabel_config[1]: Lua function rules'
      .. " are not supported here (write relabeling runs in C as the WAL is read): put a prometheus.relabel with"
      .. " the function in front of this component", err, 1, true)
    local _, doc = proc.run({ "doc", "prometheus.remote_write" })
    assert.matches("Lua function rules are refused here", doc, 1, true)
  end)
end)
