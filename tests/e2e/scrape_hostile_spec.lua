-- End-to-end: targets that attack the scraper, through `moonwatch run` against a real
-- HTTP server (fixtures/hostile_target.py). A 64 MiB line without a newline, a gzip
-- bomb (~1 MB inflating to 1 GiB) and a target of 2,000,000 samples over sample_limit:
-- each scrape fails fast with its error and up 0, scrape_samples_scraped as Prometheus
-- reports it, the agent's memory stays bounded (the default body_size_limit, 100 MiB,
-- stops the bomb) and /-/ready answers all along.
local proc = require("helpers.proc")
local cjson = require("cjson")

local tmp = proc.tmpdir()

local function ready_ms(base)
  local p = io.popen("curl -s -o /dev/null -m 2 -w '%{http_code} %{time_total}' " .. base .. "/-/ready")
  local out = p:read("*a")
  p:close()
  local code, secs = out:match("^(%d+) ([%d.]+)")
  return tonumber(code), tonumber(secs or "99") * 1000
end

local function targets(h, id)
  local _, body = proc.http("GET", h.base .. "/api/v0/components/prometheus.scrape." .. id)
  return cjson.decode(body).debug_info.targets
end

local function status(pid, key)
  local f = io.open("/proc/" .. pid .. "/status")
  local s = f and f:read("*a") or ""
  if f then
    f:close()
  end
  return tonumber(s:match(key .. ":%s*(%d+)")) or 0
end

-- The last value of a report series of a job in the echo file.
local function report(file, name, job)
  local f = io.open(file)
  local v
  for line in f:lines() do
    if line:find(name .. "{", 1, true) == 1 and line:find('job="' .. job .. '"', 1, true) then
      v = tonumber(line:match("} (%S+)"))
    end
  end
  f:close()
  return v
end

describe("prometheus.scrape against hostile targets", function()
  local h
  teardown(function()
    if h then
      h.kill("KILL")
    end
    proc.kill_spawned()
  end)

  it("fails each scrape fast with its error, bounded memory and a responsive server", function()
    local port = proc.free_port()
    proc.spawn(string.format("python3 %s/tests/e2e/fixtures/hostile_target.py %d", proc.source, port))
    proc.wait_http("http://127.0.0.1:" .. port .. "/-/ready", 60)
    local out = tmp .. "/echo.txt"
    local function scrape(id, path, extra)
      return string.format([[
prometheus.scrape "%s" {
  targets = { { __address__ = "127.0.0.1:%d", __metrics_path__ = "%s" } },
  forward_to = { prometheus.echo.e.receiver },
  job_name = "%s", scrape_interval = "10s", scrape_timeout = "5s", %s
}
]], id, port, path, id, extra or "")
    end
    local file = proc.write(tmp .. "/hostile.lua", scrape("long", "/longline") .. scrape("bomb", "/bomb")
      .. scrape("many", "/many", "sample_limit = 1000,")
      .. string.format('prometheus.echo "e" { file = %q }\n', out))
    h = proc.start_run(file)
    local worst, failed = 0, 0
    local deadline = os.time() + 25
    local done = {}
    repeat
      local code, ms = ready_ms(h.base)
      if code ~= 200 then
        failed = failed + 1
      elseif ms > worst then
        worst = ms
      end
      for _, id in ipairs({ "long", "bomb", "many" }) do
        local t = targets(h, id)[1]
        if t and t.last_scrape then
          done[id] = t
        end
      end
      os.execute("sleep 0.1")
    until (done.long and done.bomb and done.many) or os.time() > deadline
    assert.is_truthy(done.long and done.bomb and done.many, "not every target was scraped")
    assert.matches("^line 1: line longer than 1048576 bytes", done.long.last_error)
    assert.equals("body size limit exceeded", done.bomb.last_error)
    assert.equals("sample limit exceeded", done.many.last_error)
    for id, t in pairs(done) do
      assert.equals("down", t.health, id)
      -- each failed within its scrape_timeout (5 s); the limits fail fast
      assert.is_true(tonumber(t.last_scrape_duration:match("[%d.]+")) < 5, id .. " " .. t.last_scrape_duration)
    end
    os.execute("sleep 1")
    for _, id in ipairs({ "long", "bomb", "many" }) do
      assert.equals(0, report(out, "up", id), id)
    end
    -- Prometheus reports the samples parsed before the body failed; the sample limit
    -- stops at the first one past it
    assert.equals(1001, report(out, "scrape_samples_scraped", "many"))
    assert.equals(0, report(out, "scrape_samples_scraped", "bomb"))
    assert.equals(0, failed, "/-/ready did not answer " .. failed .. " times")
    -- the body is inflated and parsed in 4 MiB steps with the loop running between them:
    -- measured (the probes every 0.1 s, 3 runs each, beside a make test): worst 66-119 ms;
    -- 39-1097 ms when the bomb's inflate to the 100 MiB limit was one step. ASan's checks
    -- make every step two to three times longer.
    local bound = proc.sanitized() and 1500 or 600
    assert.is_true(worst < bound, string.format("/-/ready took %.0f ms (bound %d)", worst, bound))
    -- peak memory: the 64 MiB body, at most the 100 MiB inflated by the bomb, and the
    -- 50 MB /many body, never the bomb's 1 GiB or a multiple of a body
    -- (not under ASan, whose quarantine and shadow memory add their own)
    local hwm = status(h.pid, "VmHWM") / 1024
    if not proc.sanitized() then
      assert.is_true(hwm < 400, string.format("peak RSS %.0f MiB", hwm))
    end
  end)
end)
