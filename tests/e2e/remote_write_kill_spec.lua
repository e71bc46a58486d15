-- Soak (`make soak-kill`, not part of `make test`): moonwatch SIGKILLed again and again while it
-- ships ~20,000 samples/s (one target of 10,000 series every 500 ms) through a proxy that logs
-- every sample into a real Prometheus. No sample the WAL acknowledged is lost; what a restart
-- sends again (duplicates) is counted. MOONWATCH_SOAK_KILLS kills (the spec is pending without it).
local proc = require("helpers.proc")
local rw = require("helpers.rw_e2e")

local KILLS = tonumber(os.getenv("MOONWATCH_SOAK_KILLS") or "")
local SERIES = 10000

describe("prometheus.remote_write under SIGKILL", function()
  teardown(proc.kill_spawned)

  it("loses no acknowledged sample over repeated SIGKILLs under load", function()
    if not KILLS then
      pending("make soak-kill runs it")
      return
    end
    local tmp = rw.tmp
    local log, plog, slog = tmp .. "/served-kill", tmp .. "/proxy-kill", tmp .. "/samples-kill"
    local tport, tpid = rw.start_target(log, SERIES)
    local pport = rw.free_port()
    rw.start_prometheus(pport, tmp .. "/prom-kill")
    local xport = rw.free_port()
    -- a fast proxy (1-9 ms a request) that logs every sample it passes on
    rw.spawn(string.format("%s lua %s/tests/e2e/fixtures/slow_proxy.lua %d http://127.0.0.1:%d/api/v1/write 0.005 %s"
      .. " 1e9 %s", proc.quote(proc.bin), rw.SRC, xport, pport, plog, slog))
    rw.wait_http("http://127.0.0.1:" .. xport .. "/-/ready")
    local file = rw.pipeline("kill", tport, { "http://127.0.0.1:" .. xport .. "/api/v1/write" })
    local data = tmp .. "/data-kill"
    local time_now = require("moonwatch.ffi").time_now
    -- a sample is acknowledged once its scrape is appended: served more than a scrape_timeout
    -- (500 ms) and a margin before the kill
    local unacked = {}
    math.randomseed(os.time())
    local started = time_now()
    for k = 1, KILLS do
      local h = proc.start_run(file, { "--storage.path=" .. data })
      os.execute(string.format("sleep %.1f", 3 + math.random() * 7))
      h.kill("KILL")
      h.wait(5)
      local at = math.floor(time_now() * 1000)
      unacked[#unacked + 1] = { from = at - 1000, to = at }
      io.stderr:write(string.format("kill %d at %.1f s\n", k, time_now() - started))
    end
    -- the last run: the target stops, everything drains, a clean stop
    local h = proc.start_run(file, { "--storage.path=" .. data })
    os.execute("sleep 5")
    os.execute("kill " .. tpid)
    local want, nwant = rw.served(log)
    local function is_acked(ts)
      for _, w in ipairs(unacked) do
        if ts > w.from and ts <= w.to then
          return false
        end
      end
      return true
    end
    local got, lines, missing, lost = {}, 0, 0, 0
    for _ = 1, 60 do
      got, lines = {}, 0
      for line in io.lines(slog) do
        local series, ts = line:match('^__name__="rw_test",.*series="(%d+)"%S* (%d+) ')
        if series then
          got[series .. " " .. ts] = true
          lines = lines + 1
        end
      end
      missing, lost = 0, 0
      for key in pairs(want) do
        if not got[key] then
          missing = missing + 1
          if is_acked(tonumber(key:match(" (%d+)$"))) then
            lost = lost + 1
          end
        end
      end
      if lost == 0 then
        break
      end
      os.execute("sleep 1")
    end
    local unique = 0
    for _ in pairs(got) do
      unique = unique + 1
    end
    local secs = time_now() - started
    io.stderr:write(string.format("%d kills in %.0f s: %d samples served (%.0f/s), %d delivered (%d requests' samples,"
      .. " %.2f%% duplicates), %d not delivered, all within a second before a kill (not acknowledged), %d lost\n",
      KILLS, secs, nwant, nwant / secs, unique, lines, 100 * (lines - unique) / math.max(unique, 1), missing, lost))
    assert.equals(0, lost)
    h.kill("TERM")
    assert.equals(0, h.wait(30))
  end)
end)
