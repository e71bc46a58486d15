-- End-to-end: signal kinds through `moonwatch check` and `moonwatch run`: a forward_to of
-- metrics refuses a logs receiver at check time (file:line), takes a metrics one; the
-- one fan-out helper keeps feeding a healthy receiver when another raises, and counts it.
local proc = require("helpers.proc")

local FIXTURES = proc.source .. "/tests/lua/fixtures/components"
local tmp = proc.tmpdir()

local slurp = proc.read_file

describe("signal kinds", function()
  it("check: a metrics forward_to refuses a logs receiver, with file:line", function()
    local f = proc.write(tmp .. "/kinds-refused.lua", [[
prometheus.exporter.self "s" {}
test.logsink "l" {}
prometheus.scrape "a" {
  targets    = prometheus.exporter.self.s.targets,
  forward_to = { test.logsink.l.receiver },
}
]])
    local code, _, err = proc.run({ "check", "--component.path=" .. FIXTURES, f })
    assert.equals(1, code)
    assert.matches(f .. ':3: prometheus.scrape "a": forward_to: element 1: expected a metrics receiver '
      .. "(e.g. prometheus.remote_write.x.receiver), got a log receiver", err, 1, true)
  end)

  it("check: a logs forward_to refuses a metrics receiver", function()
    local f = proc.write(tmp .. "/kinds-refused-logs.lua", [[
test.recorder "r" {}
test.logsink "l" { forward_to = { test.recorder.r.receiver } }
]])
    local code, _, err = proc.run({ "check", "--component.path=" .. FIXTURES, f })
    assert.equals(1, code)
    assert.matches(f .. ':2: test.logsink "l": forward_to: element 1: expected a log receiver '
      .. "(e.g. loki.write.x.receiver), got a metrics receiver", err, 1, true)
  end)

  it("check: metrics to metrics and logs to logs are accepted", function()
    local f = proc.write(tmp .. "/kinds-ok.lua", [[
prometheus.exporter.self "s" {}
test.logsink "l" {}
test.logsink "l2" { forward_to = { test.logsink.l.receiver } }
test.recorder "r" {}
prometheus.scrape "a" {
  targets    = prometheus.exporter.self.s.targets,
  forward_to = { test.recorder.r.receiver },
}
]])
    local code, out, err = proc.run({ "check", "--component.path=" .. FIXTURES, f })
    assert.equals(0, code, out .. err)
  end)
end)

describe("fan-out", function()
  after_each(proc.kill_spawned)

  it("keeps feeding the healthy receiver when another raises, counts and rate-limits the errors", function()
    local out = tmp .. "/fanout-echo.txt"
    os.remove(out)
    local f = proc.write(tmp .. "/fanout.lua", string.format([[
prometheus.exporter.self "s" {}
test.failing "down" {}
prometheus.echo "e" { file = %q }
prometheus.scrape "a" {
  targets    = prometheus.exporter.self.s.targets,
  forward_to = { test.failing.down.receiver, prometheus.echo.e.receiver },
  scrape_interval = "200ms", scrape_timeout = "200ms",
}
]], out))
    local h = proc.start_run(f, { "--component.path=" .. FIXTURES, "--storage.path=" .. tmp .. "/fanout-data" })
    local ok, err = pcall(function()
      local errors_total
      for _ = 1, 100 do
        local _, body = proc.http("GET", h.base .. "/metrics")
        errors_total = tonumber(body:match('moonwatch_component_forward_errors_total{component_id="prometheus.scrape.a",'
          .. 'receiver="test.failing.down"} (%d+)'))
        if errors_total and errors_total >= 5 then
          break
        end
        os.execute("sleep 0.1")
      end
      assert.is_true(errors_total and errors_total >= 5, "forward errors: " .. tostring(errors_total))
      -- the echo after the failing receiver got every scrape
      local scrapes = select(2, slurp(out):gsub("\nup{[^\n]*} 1 ", ""))
      assert.is_true(scrapes >= 2, "echo saw " .. scrapes .. " scrapes")
      -- one error logged (the next ones wait 10 s), naming the receiver and its error
      local log = h.read()
      local _, logged = log:gsub('msg="receiver failed"', "")
      assert.equals(1, logged, log)
      assert.matches('err="sink is down" receiver=test.failing.down', log, 1, true)
    end)
    h.kill()
    assert.equals(0, h.wait(10))
    assert(ok, err)
  end)
end)

describe("metadata travels with the data", function()
  after_each(proc.kill_spawned)

  it("scrape -> a custom Lua component -> remote_write: the endpoint gets the target's metadata", function()
    local cjson = require("cjson")
    local tport, rport = proc.free_port(), proc.free_port()
    local decoded = tmp .. "/meta-fwd-decoded"
    os.remove(decoded)
    proc.spawn(string.format("%s lua %s/tests/e2e/fixtures/meta_target.lua %d 1", proc.quote(proc.bin), proc.source,
      tport))
    proc.spawn(string.format("%s lua %s/tests/e2e/fixtures/receiver.lua %d %s 200 %s", proc.quote(proc.bin),
      proc.source, rport, tmp .. "/meta-fwd-requests", decoded))
    proc.wait_http("http://127.0.0.1:" .. tport .. "/metrics")
    for _ = 1, 100 do -- the receiver answers (GET: 404)
      if (proc.http("GET", "http://127.0.0.1:" .. rport .. "/") or 0) > 0 then
        break
      end
      os.execute("sleep 0.05")
    end
    local f = proc.write(tmp .. "/meta-fwd.lua", string.format([[
prometheus.scrape "t" {
  targets    = {{ __address__ = "127.0.0.1:%d" }},
  forward_to = { test.forwarder.f.receiver },
  scrape_interval = "300ms", scrape_timeout = "300ms",
}
test.forwarder "f" { forward_to = { prometheus.remote_write.out.receiver } }
prometheus.remote_write "out" {
  endpoint = { url = "http://127.0.0.1:%d/api/v1/write", metadata_config = { send_interval = "500ms" },
    queue_config = { batch_send_deadline = "200ms" } },
}
]], tport, rport))
    local h = proc.start_run(f, { "--component.path=" .. FIXTURES, "--storage.path=" .. tmp .. "/meta-fwd-data" })
    local ok, err = pcall(function()
      local got = {}
      for _ = 1, 100 do
        local fh = io.open(decoded)
        if fh then
          for line in fh:lines() do
            for _, m in ipairs(cjson.decode(line).metadata or {}) do
              got[m.name] = m
            end
          end
          fh:close()
        end
        if got.rw_meta_seconds and got.rw_meta_requests and got.rw_meta_family_1 then
          break
        end
        os.execute("sleep 0.1")
      end
      assert.same({ type = 2, name = "rw_meta_seconds", help = 'A gauge with "quotes" and \\ a backslash.',
        unit = "seconds" }, got.rw_meta_seconds)
      assert.same({ type = 1, name = "rw_meta_requests", help = "Requests served.", unit = "" }, got.rw_meta_requests)
      assert.same({ type = 2, name = "rw_meta_family_1", help = "Family 1.", unit = "" }, got.rw_meta_family_1)
    end)
    h.kill()
    assert.equals(0, h.wait(10))
    assert(ok, err)
  end)
end)
