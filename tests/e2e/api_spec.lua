-- End-to-end: the HTTP server of a running moonwatch (ready, healthy, reload, debug API, UI).
local proc = require("helpers.proc")
local cjson = require("cjson")

local FIXTURES = proc.source .. "/tests/lua/fixtures/components"
local tmp = proc.tmpdir()
local SECRET = "s3cr3t-value-that-must-not-leak"

describe("HTTP API", function()
  local h, file

  setup(function()
    file = proc.write(tmp .. "/api.lua", string.format([[
test.producer "p" { count = 2 }
test.consumer "c" { targets = test.producer.p.targets, token = %q, interval = "30s" }
test.consumer "bad" { fail_run = true }
]], SECRET))
    h = proc.start_run(file, { "--component.path=" .. FIXTURES, "--storage.path=" .. tmp .. "/data" })
  end)

  teardown(function()
    h.kill("TERM")
    h.wait(10)
  end)

  it("is ready after the first load", function()
    local status, body = proc.http("GET", h.base .. "/-/ready")
    assert.equals(200, status)
    assert.equals("Moonwatch is ready.\n", body)
  end)

  it("answers /-/healthy with 500 naming the unhealthy components", function()
    local status, body = proc.http("GET", h.base .. "/-/healthy")
    assert.equals(500, status)
    assert.equals("unhealthy components: test.consumer.bad\n", body)
  end)

  it("lists components with health, dependencies and dependents", function()
    local status, body, headers = proc.http("GET", h.base .. "/api/v0/components")
    assert.equals(200, status)
    assert.matches("Content%-Type: application/json", headers)
    local list = cjson.decode(body)
    local by = {}
    for _, c in ipairs(list) do
      by[c.id] = c
    end
    assert.equals(3, #list)
    assert.same({ "test.producer.p" }, by["test.consumer.c"].dependencies)
    assert.same({ "test.consumer.c" }, by["test.producer.p"].dependents)
    assert.equals("healthy", by["test.consumer.c"].health.state)
    assert.equals("unhealthy", by["test.consumer.bad"].health.state)
    assert.equals("test.consumer", by["test.consumer.c"].name)
    assert.equals("c", by["test.consumer.c"].label)
  end)

  it("shows a component's arguments (secrets redacted), exports and debug info", function()
    local status, body = proc.http("GET", h.base .. "/api/v0/components/test.consumer.c")
    assert.equals(200, status)
    local c = cjson.decode(body)
    assert.equals("(secret)", c.arguments.token)
    assert.equals("30s", c.arguments.interval)
    assert.equals("t1", c.arguments.targets[1].__address__)
    assert.equals("receiver test.consumer.c", c.exports.receiver)
    assert.equals(1, c.debug_info.runs)
    assert.is_nil(body:find(SECRET, 1, true))
  end)

  it("answers 404 for an unknown component", function()
    local status = proc.http("GET", h.base .. "/api/v0/components/nope.nope.x")
    assert.equals(404, status)
  end)

  it("serves the UI", function()
    local status, body = proc.http("GET", h.base .. "/")
    assert.equals(200, status)
    assert.matches("<title>moonwatch</title>", body, 1, true)
  end)

  it("reload with a broken file answers 400 and keeps the pipeline; a good one answers 200", function()
    local f = io.open(file)
    local good = f:read("*a")
    f:close()
    proc.write(file, good .. '\ntest.consumer "x" { targets = test.producer.nope.targets }\n')
    local status, body = proc.http("POST", h.base .. "/-/reload")
    assert.equals(400, status)
    assert.matches(":5: test.consumer \"x\": reference to undeclared component: test.producer.nope.targets", body, 1,
      true)
    local _, list = proc.http("GET", h.base .. "/api/v0/components")
    assert.equals(3, #cjson.decode(list))
    proc.write(file, good .. '\ntest.consumer "x" {}\n')
    status = proc.http("POST", h.base .. "/-/reload")
    assert.equals(200, status)
    _, list = proc.http("GET", h.base .. "/api/v0/components")
    assert.equals(4, #cjson.decode(list))
  end)

  it("never prints the secret in its logs", function()
    assert.is_nil(h.read():find(SECRET, 1, true))
  end)
end)

describe("HTTP API: data flow and live debugging", function()
  local h, dir
  local PASSWORD, HEADER = "pw-in-the-url-must-not-leak", "header-value-must-not-leak"

  local function get(path)
    local status, body = proc.http("GET", h.base .. path)
    local ok, v = pcall(cjson.decode, body)
    return status, ok and v or { error = body }
  end
  local function send(method, path, body, ctype)
    local status, out = proc.http(method, h.base .. path, {
      headers = { "Content-Type: " .. (ctype or "application/json") }, body = body })
    local ok, v = pcall(cjson.decode, out)
    return status, ok and v or { error = out }
  end

  setup(function()
    dir = proc.tmpdir()
    local file = proc.write(dir .. "/flow.lua", string.format([[
prometheus.exporter.self "self" {}
prometheus.scrape "s" {
  targets = prometheus.exporter.self.self.targets,
  forward_to = { prometheus.echo.e.receiver },
  scrape_interval = "1s", scrape_timeout = "1s",
  http_headers = { ["X-Api-Key"] = "%s" },
}
prometheus.echo "e" { file = %q }
prometheus.remote_write "w" {
  endpoint = { url = "http://moon:%s@127.0.0.1:9/api/v1/write", headers = { Authorization = "Bearer %s" } },
}
]], HEADER, dir .. "/echo.txt", PASSWORD, HEADER))
    h = proc.start_run(file, { "--storage.path=" .. dir .. "/data" })
    -- two scrapes at least
    local deadline = os.time() + 10
    repeat
      os.execute("sleep 0.2")
      local _, g = get("/api/v0/graph")
      local n = 0
      for _, e in ipairs(g.edges or {}) do
        if e.from == "prometheus.scrape.s" then
          n = e.samples_total
        end
      end
    until n > 0 or os.time() > deadline
  end)

  teardown(function()
    h.kill("TERM")
    h.wait(10)
  end)

  it("lists each component's data-flow edges: a component sends to the receivers it references", function()
    local _, list = get("/api/v0/components")
    local by = {}
    for _, c in ipairs(list) do
      by[c.id] = c
    end
    assert.same({ "prometheus.echo.e" }, by["prometheus.scrape.s"].data_flow_edges_to)
    assert.same({ "prometheus.scrape.s" }, by["prometheus.exporter.self.self"].data_flow_edges_to)
    assert.same({}, by["prometheus.echo.e"].data_flow_edges_to)
    assert.is_false(by["prometheus.echo.e"].live_debugging)
  end)

  it("answers the graph with every edge's samples and rate", function()
    local status, g = get("/api/v0/graph?window=10")
    assert.equals(200, status)
    assert.equals(10, g.window)
    assert.equals(4, #g.components)
    local by = {}
    for _, e in ipairs(g.edges) do
      by[e.from .. " -> " .. e.to] = e
    end
    local scrape = by["prometheus.scrape.s -> prometheus.echo.e"]
    assert.equals("receiver", scrape.type)
    assert.is_true(scrape.samples_total > 0 and scrape.rate > 0)
    local exporter = by["prometheus.exporter.self.self -> prometheus.scrape.s"]
    assert.equals("targets", exporter.type)
    assert.is_true(exporter.samples_total > 0 and exporter.rate > 0)
    -- the exporter's samples, and the report series on top of them
    assert.is_true(scrape.samples_total > exporter.samples_total)
    assert.equals(2, #g.edges)
    for _, w in ipairs({ "0", "301", "abc", "1.5" }) do
      assert.equals(400, (get("/api/v0/graph?window=" .. w)))
    end
  end)

  it("counts the samples of each edge in /metrics", function()
    local _, body = proc.http("GET", h.base .. "/metrics")
    local n = body:match('moonwatch_dataflow_samples_total{component_id="prometheus.scrape.s",'
      .. 'to_component_id="prometheus.echo.e"} (%d+)')
    assert.is_true(tonumber(n) > 0)
  end)

  it("live debugging is off by default: no samples are kept", function()
    local status, st = get("/api/v0/livedebugging/prometheus.scrape.s")
    assert.equals(200, status)
    assert.is_false(st.enabled)
    assert.same({}, st.entries)
    assert.equals(0, st.samples_seen)
    local _, list = get("/api/v0/livedebugging")
    assert.same({}, list)
  end)

  it("refuses what it cannot do", function()
    local path = "/api/v0/livedebugging/prometheus.scrape.s"
    assert.equals(404, (get("/api/v0/livedebugging/nope.nope.x")))
    assert.equals(404, (send("PUT", "/api/v0/livedebugging/nope.nope.x", '{"enabled":true}')))
    assert.equals(415, (send("PUT", path, '{"enabled":true}', "application/x-www-form-urlencoded")))
    assert.equals(400, (send("PUT", path, "{not json")))
    assert.equals(400, (send("PUT", path, '{"enabled":"yes"}')))
    assert.equals(400, (send("PUT", path, '{"enabled":true,"capacity":0}')))
    assert.equals(400, (send("PUT", path, '{"enabled":true,"capacity":5000}')))
    assert.equals(400, (send("PUT", path, '{"enabled":true,"sample":1}')))
    local status, err = send("PUT", "/api/v0/livedebugging/prometheus.exporter.self.self", '{"enabled":true}')
    assert.equals(400, status)
    assert.matches("no samples through receivers", err.error, 1, true)
    -- nothing was switched on
    assert.is_false(select(2, get(path)).enabled)
  end)

  it("switched on, keeps the last samples a component received or emitted, at most capacity", function()
    local path = "/api/v0/livedebugging/prometheus.scrape.s"
    local status, st = send("PUT", path, '{"enabled":true,"capacity":5}')
    assert.equals(200, status)
    assert.is_true(st.enabled)
    assert.equals(5, st.capacity)
    local _, list = get("/api/v0/livedebugging")
    assert.equals("prometheus.scrape.s", list[1].component_id)
    local deadline = os.time() + 10
    repeat
      os.execute("sleep 0.2")
      _, st = get(path)
    until #st.entries == 5 or os.time() > deadline
    assert.equals(5, #st.entries)
    assert.is_true(st.samples_seen >= 5)
    for i, e in ipairs(st.entries) do
      assert.equals("out", e.direction)
      assert.equals("prometheus.echo.e", e.peer)
      assert.equals("string", type(e.value))
      assert.equals(e.labels.__name__, e.sample:match("^[%w_:]+"))
      assert.is_true(e.timestamp > 0)
      if i > 1 then
        assert.is_true(e.seq > st.entries[i - 1].seq)
      end
    end
    -- the echo, on too, sees the same samples come in
    send("POST", "/api/v0/livedebugging/prometheus.echo.e", '{"enabled":true}')
    local est
    deadline = os.time() + 10
    repeat
      os.execute("sleep 0.2")
      _, est = get("/api/v0/livedebugging/prometheus.echo.e")
    until #est.entries > 0 or os.time() > deadline
    assert.equals("in", est.entries[1].direction)
    assert.equals("prometheus.scrape.s", est.entries[1].peer)
    -- since: only the newer entries
    local _, newer = get(path .. "?since=" .. st.entries[5].seq)
    for _, e in ipairs(newer.entries) do
      assert.is_true(e.seq > st.entries[5].seq)
    end
  end)

  it("switched off, keeps nothing more; DELETE empties it", function()
    local path = "/api/v0/livedebugging/prometheus.scrape.s"
    local status, st = send("PUT", path, '{"enabled":false}')
    assert.equals(200, status)
    assert.is_false(st.enabled)
    local seq = st.seq
    os.execute("sleep 2.2") -- two scrapes
    st = select(2, get(path))
    assert.equals(seq, st.seq)
    status, st = proc.http("DELETE", h.base .. "/api/v0/livedebugging/prometheus.echo.e")
    assert.equals(200, status)
    st = cjson.decode(st)
    assert.is_false(st.enabled)
    assert.same({}, st.entries)
    st = select(2, get("/api/v0/livedebugging/prometheus.echo.e"))
    assert.same({}, st.entries)
    local _, list = get("/api/v0/livedebugging")
    assert.same({}, list)
  end)

  it("shows no URL password and no header value in arguments, debug info or /metrics", function()
    local status, body = proc.http("GET", h.base .. "/api/v0/components/prometheus.remote_write.w")
    assert.equals(200, status)
    assert.is_nil(body:find(PASSWORD, 1, true))
    assert.is_nil(body:find(HEADER, 1, true))
    local c = cjson.decode(body)
    assert.equals("http://moon:xxxxx@127.0.0.1:9/api/v1/write", c.arguments.endpoint[1].url)
    assert.same({ Authorization = "(secret)" }, c.arguments.endpoint[1].headers)
    assert.equals("http://moon:xxxxx@127.0.0.1:9/api/v1/write", c.debug_info.endpoints[1].url)
    status, body = proc.http("GET", h.base .. "/api/v0/components/prometheus.scrape.s")
    assert.equals(200, status)
    assert.is_nil(body:find(HEADER, 1, true))
    assert.same({ ["X-Api-Key"] = "(secret)" }, cjson.decode(body).arguments.http_headers)
    local _, metrics = proc.http("GET", h.base .. "/metrics")
    assert.is_nil(metrics:find(PASSWORD, 1, true))
    assert.matches('url="http://moon:xxxxx@127.0.0.1:9/api/v1/write"', metrics, 1, true)
    local _, graph = proc.http("GET", h.base .. "/api/v0/graph")
    assert.is_nil(graph:find(PASSWORD, 1, true))
    assert.is_nil(h.read():find(PASSWORD, 1, true))
  end)
end)
