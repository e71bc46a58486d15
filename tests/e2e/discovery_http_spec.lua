-- End-to-end: discovery.http against a real HTTP server (tests/e2e/fixtures/http_sd.py),
-- through `moonwatch run` with discovery.relabel reading its targets: Prometheus's HTTP SD
-- rules (200 only, application/json only, a JSON list of groups, __meta_url), the shared
-- client config (a bearer token from a file), and failures that keep the last good targets.
local proc = require("helpers.proc")
local cjson = require("cjson")

local tmp = proc.tmpdir()

local component = proc.component

local function targets(h)
  return proc.target_strings(component(h, "discovery.relabel.r").exports.output)
end

local function set(dir, name, content)
  proc.write_atomic(dir .. "/" .. name, content)
end

describe("discovery.http", function()
  local dir, port, pid, h
  setup(function()
    dir = tmp .. "/sd"
    os.execute("mkdir -p " .. dir)
    port, pid = proc.start_server(string.format("exec python3 %s/tests/e2e/fixtures/http_sd.py %%d %s",
      os.getenv("MOONWATCH_SOURCE_DIR") or ".", dir), "curl -s http://127.0.0.1:%d/ping")
  end)
  teardown(function()
    if h then
      h.kill("TERM")
      h.wait(10)
    end
    os.execute("kill " .. pid .. " 2>/dev/null")
  end)

  it("serves Prometheus HTTP SD targets, and keeps the last good ones on every kind of failure", function()
    set(dir, "token", "s3cret")
    proc.write(tmp .. "/token", "s3cret\n")
    set(dir, "body", [[
[{"targets": ["10.1.0.1:9100", "10.1.0.2:9100"], "labels": {"job": "node", "dc": "a"}},
 {"targets": ["10.1.0.3:80"], "labels": {}}]
]])
    local url = string.format("http://127.0.0.1:%d/sd", port)
    local file = proc.write(tmp .. "/p.lua", string.format([[
discovery.http "h" {
  url = %q,
  refresh_interval = "200ms",
  bearer_token_file = %q,
}
discovery.relabel "r" {
  targets = discovery.http.h.targets,
  rule = { source_labels = { "job" }, regex = "", action = "replace", target_label = "job", replacement = "none" },
}
]], url, tmp .. "/token"))
    h = proc.start_run(file)
    local good = {
      "__address__=10.1.0.1:9100,__meta_url=" .. url .. ",dc=a,job=node",
      "__address__=10.1.0.2:9100,__meta_url=" .. url .. ",dc=a,job=node",
      "__address__=10.1.0.3:80,__meta_url=" .. url .. ",job=none",
    }
    proc.wait_for(function()
      return #targets(h) == 3
    end, 10, "targets")
    assert.same(good, targets(h))
    assert.equals("healthy", component(h, "discovery.http.h").health.state)
    local seen = cjson.decode(proc.read_file(dir .. "/last_headers"))
    assert.equals("application/json", seen.accept)
    assert.equals("0.2", seen["x-prometheus-refresh-interval-seconds"])
    assert.matches("^moonwatch/", seen["user-agent"])

    -- each failure: unhealthy with the reason, a failure counted, the targets kept
    local failures = proc.metric(h, "prometheus_sd_http_failures_total")
    local function fails(reason, kept)
      local c = proc.wait_for(function()
        local c = component(h, "discovery.http.h")
        return c.health.message:find(reason, 1, true) and c
      end, 10, reason)
      assert.equals("unhealthy", c.health.state)
      assert.same(kept or good, targets(h))
      local now = proc.metric(h, "prometheus_sd_http_failures_total")
      assert.is_true(now > failures, "prometheus_sd_http_failures_total did not grow")
      failures = now
    end
    set(dir, "status", "500")
    fails("server returned HTTP status 500")
    set(dir, "status", "200")
    set(dir, "content_type", "text/plain")
    fails('unsupported content type "text/plain"')
    set(dir, "content_type", 'application/json; charset="utf-8"')
    set(dir, "body", '[{"targets": ["x:1"]}, null]')
    fails("target group 1: nil target group item found")
    set(dir, "body", '[{"targets": ["x:1"],\n  "labels": {"a": "b",}}]')
    fails("line 2, column")
    set(dir, "body", '{"targets": ["x:1"]}')
    fails("expected a list of target groups")
    set(dir, "token", "rotated")
    set(dir, "body", '[{"targets": ["new:1"]}]')
    fails("server returned HTTP status 401")
    -- a rotated token file is read again at the next refresh; the new targets replace the old
    proc.write(tmp .. "/token", "rotated\n")
    proc.wait_for(function()
      return targets(h)[1] == "__address__=new:1,__meta_url=" .. url .. ",job=none"
    end, 10, "the new targets")
    assert.equals(1, #targets(h))
    assert.equals("healthy", component(h, "discovery.http.h").health.state)
    -- the server goes away: connection refused, targets kept
    os.execute("kill " .. pid)
    fails("connection refused", { "__address__=new:1,__meta_url=" .. url .. ",job=none" })
  end)

  it("a reload's new url wins over a slow refresh of the old one still under way", function()
    local sdir = tmp .. "/slow"
    os.execute("mkdir -p " .. sdir)
    set(sdir, "body", '[{"targets": ["a:1"]}]')
    local sport, spid = proc.start_server(string.format("exec python3 %s/tests/e2e/fixtures/http_sd.py %%d %s",
      os.getenv("MOONWATCH_SOURCE_DIR") or ".", sdir), "curl -s http://127.0.0.1:%d/ping")
    local function conf(v)
      return string.format([[
discovery.http "h" {
  url = "http://127.0.0.1:%d/sd?v=%d",
  refresh_interval = "3s",
}
discovery.relabel "r" {
  targets = discovery.http.h.targets,
}
]], sport, v)
    end
    local file = proc.write(tmp .. "/slow.lua", conf(1))
    local sh = proc.start_run(file)
    local ok, err = pcall(function()
      local function meta_url()
        local got = component(sh, "discovery.relabel.r").exports.output
        return type(got) == "table" and got[1] and got[1].__meta_url
      end
      proc.wait_for(meta_url, 10, "the first targets")
      -- the next refresh of v=1 is slow; while it is under way, a reload switches to v=2
      set(sdir, "delay", "1.5")
      local before = tonumber(proc.read_file(sdir .. "/requests"))
      proc.wait_for(function()
        return tonumber(proc.read_file(sdir .. "/requests")) > before
      end, 10, "the slow refresh")
      set(sdir, "delay", "0")
      proc.write(file, conf(2))
      assert.equals(200, (proc.http("POST", sh.base .. "/-/reload")))
      local want = string.format("http://127.0.0.1:%d/sd?v=2", sport)
      proc.wait_for(function()
        return meta_url() == want
      end, 10, "the reloaded url's targets")
      os.execute("sleep 2") -- the slow answer of v=1 has come by now
      assert.equals(want, meta_url())
    end)
    sh.kill("TERM")
    sh.wait(10)
    os.execute("kill " .. spid .. " 2>/dev/null")
    assert(ok, err)
  end)

  it("rejects a URL that is not http(s), naming the line", function()
    local file = proc.write(tmp .. "/bad.lua", 'discovery.http "h" {\n  url = "ftp://x/sd",\n}\n')
    local code, _, err = proc.run({ "check", file })
    assert.equals(1, code)
    assert.matches('bad.lua:1: discovery.http "h": url "ftp://x/sd": the URL scheme must be http or https', err, 1, true)
  end)
end)
