-- End-to-end: the logging block's write_to through `moonwatch run`: moonwatch's own log
-- lines reach the log receivers as entries of stream {component="moonwatch"}, as written
-- (logfmt or json, level and component_id in the line), batched; and a receiver that logs an
-- error for each batch it gets (or raises) does not feed itself: its lines go to stderr only.
local proc = require("helpers.proc")

local FIXTURES = proc.source .. "/tests/lua/fixtures/components"
local tmp = proc.tmpdir()

local slurp = proc.read_file

local function count(s, pat)
  local n = 0
  for _ in s:gmatch(pat) do
    n = n + 1
  end
  return n
end

local wait_for = proc.wait_for

describe("logging { write_to }", function()
  it("sends moonwatch's own log lines to the receivers, as written, batched", function()
    local out = tmp .. "/logfmt/out.log"
    local f = proc.write(tmp .. "/logfmt.lua", string.format([[
logging { write_to = { loki.echo.e.receiver } }
loki.echo "e" { file = %q }
test.logsource "s" {
  entries = { { labels = { a = "b" }, line = "x" } },
  interval = "200ms",
  forward_to = { loki.relabel.bad.receiver },
}
loki.relabel "bad" {
  rule = { function() error("boom") end },
  forward_to = { loki.echo.e.receiver },
}
]], out))
    local h = proc.start_run(f, { "--component.path=" .. FIXTURES })
    local ok = wait_for(function()
      return slurp(out):find("boom", 1, true) ~= nil and slurp(out):find("pipeline running", 1, true) ~= nil
    end)
    h.kill()
    assert.is_true(ok, h.read())
    assert.equals(0, h.wait(10))
    local s = slurp(out)
    -- the lines until the shutdown starts are delivered before the components stop
    assert.matches('msg=\\"shutting down\\" signal=SIGTERM', s)
    -- the line as written on stderr, level and component_id in it, stream {component="moonwatch"}
    assert.matches('labels="{component=\\"moonwatch\\"}" entry="ts=[^ ]+ level=info msg=\\"pipeline running\\"', s)
    assert.matches('labels="{component=\\"moonwatch\\"}" entry="ts=[^ ]+ level=error '
      .. 'component_id=loki.relabel.bad msg=\\"relabel rule failed', s)
    local stderr = h.read()
    local line = stderr:match('(ts=%S+ level=info msg="pipeline running"[^\n]*)')
    assert.truthy(line)
    assert.matches(line:gsub("\\", "\\\\"):gsub('"', '\\"'), s, 1, true)
  end)

  it("writes json lines with format = json", function()
    local out = tmp .. "/json/out.log"
    local f = proc.write(tmp .. "/json.lua", string.format([[
logging { format = "json", write_to = { loki.echo.e.receiver } }
loki.echo "e" { file = %q }
]], out))
    local h = proc.start({ "run", "--server.http.listen-addr=127.0.0.1:0", f })
    local ok = wait_for(function()
      return slurp(out):find("pipeline running", 1, true) ~= nil
    end)
    h.kill()
    assert.is_true(ok, h.read())
    assert.equals(0, h.wait(10))
    assert.matches('entry="{\\"ts\\":\\"[^"]+\\",\\"level\\":\\"info\\",\\"msg\\":\\"pipeline running\\"', slurp(out))
  end)

  it("queues at most 1000 lines: the rest are dropped and counted", function()
    local out = tmp .. "/burst/out.log"
    local f = proc.write(tmp .. "/burst.lua", string.format([[
logging { write_to = { loki.echo.e.receiver } }
loki.echo "e" { file = %q }
test.logerror "l" { burst = 3000 }
]], out))
    local h = proc.start_run(f, { "--component.path=" .. FIXTURES })
    assert.is_true(h.wait_log("i=3000", 10))
    local got
    wait_for(function()
      got = count(slurp(out), "burst line")
      return got >= 1000
    end)
    os.execute("sleep 0.3")
    local _, body = proc.http("GET", h.base .. "/metrics")
    h.kill()
    assert.equals(0, h.wait(10))
    got = count(slurp(out), "burst line")
    local dropped = tonumber(body:match("moonwatch_logging_write_to_dropped_lines_total (%d+)"))
    assert.is_true(got <= 1000 and got > 900, "sent: " .. got)
    assert.equals(3000, got + dropped)
  end)

  for _, raise in ipairs({ false, true }) do
    it("does not feed a receiver its own errors" .. (raise and " (it raises)" or " (it logs)"), function()
      local f = proc.write(tmp .. "/loop.lua", string.format([[
logging { write_to = { test.logerror.l.receiver } }
test.logerror "l" { raise = %s }
]], tostring(raise)))
      local h = proc.start_run(f, { "--component.path=" .. FIXTURES })
      assert.is_true(h.wait_log("logerror got a batch", 10))
      os.execute("sleep 1") -- ten delivery intervals
      local n1 = count(h.read(), "logerror got a batch")
      os.execute("sleep 1")
      local stderr = h.read()
      local n2 = count(stderr, "logerror got a batch")
      h.kill()
      assert.equals(0, h.wait(10))
      assert.equals(n1, n2) -- nothing new logged: no new batch
      assert.is_true(n1 <= 2, "batches: " .. n1)
      if raise then
        assert.matches('msg="logging write_to: receiver failed" err=', stderr, 1, true)
      end
    end)
  end
end)
