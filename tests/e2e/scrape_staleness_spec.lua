-- End-to-end: the staleness markers of prometheus.scrape, through `moonwatch run`
-- into a real Prometheus (its remote-write receiver) and a receiver that logs
-- every sample it is sent. As Prometheus: stopping moonwatch writes no marker (the
-- remote-write sender compliance cases fail on one); a target that a reload removes
-- gets its markers two intervals and 10% later, timestamped at the slot of its next
-- scrape; one that comes back before that gets none.
local proc = require("helpers.proc")
local cjson = require("cjson")

local tmp = proc.tmpdir()
local SRC = proc.source
local free_port = proc.free_port
-- The series of one target of plain_target.lua: 12 scraped, 5 report series.
local SERIES = 17

local spawn, wait_http = proc.spawn, proc.wait_http

local function now()
  return require("moonwatch.ffi").time_now()
end

-- Prometheus (remote-write receiver on), a plain target and a sample receiver; returns their ports.
local function services(name)
  local pport, tport, rport = free_port(), free_port(), free_port()
  proc.start_prometheus(pport, tmp .. "/prom-" .. name)
  spawn(string.format("%s lua %s/tests/e2e/fixtures/plain_target.lua %d", proc.quote(proc.bin), SRC, tport))
  spawn(string.format("%s lua %s/tests/e2e/fixtures/sample_receiver.lua %d %s", proc.quote(proc.bin), SRC, rport,
    tmp .. "/samples-" .. name))
  wait_http("http://127.0.0.1:" .. tport .. "/metrics")
  wait_http("http://127.0.0.1:" .. rport .. "/-/ready")
  return pport, tport, rport
end

-- The pipeline: targets (Lua source text) scraped every second into both receivers.
local function pipeline(name, targets, pport, rport)
  local q = 'queue_config = { batch_send_deadline = "100ms", min_backoff = "50ms", max_backoff = "200ms" }'
  return proc.write(tmp .. "/" .. name .. ".lua", string.format([[
prometheus.scrape "plain" {
  targets         = %s,
  forward_to      = { prometheus.remote_write.out.receiver },
  job_name        = "plain",
  scrape_interval = "1s",
  scrape_timeout  = "1s",
}
prometheus.remote_write "out" {
  endpoint = {
    { url = "http://127.0.0.1:%d/api/v1/write", %s },
    { url = "http://127.0.0.1:%d/api/v1/write", %s },
  },
}
]], targets, pport, q, rport, q))
end

-- What the sample receiver got: a list of { at (s), ts (ms), value ("stale" or a number), labels (text) }.
local function received(name)
  local out = {}
  local f = io.open(tmp .. "/samples-" .. name)
  if not f then
    return out
  end
  for line in f:lines() do
    local at, ts, v, labels = line:match("^(%d+) (%d+) (%S+) (.*)$")
    out[#out + 1] = { at = tonumber(at) / 1000, ts = tonumber(ts), value = v, labels = labels }
  end
  f:close()
  return out
end

local function stale(name, pred)
  local out = {}
  for _, s in ipairs(received(name)) do
    if s.value == "stale" and (not pred or pred(s)) then
      out[#out + 1] = s
    end
  end
  return out
end

local function instance(i)
  return function(s)
    return s.labels:find('instance="' .. i .. '"', 1, true) ~= nil
  end
end

-- An instant query in Prometheus: { [series labels as JSON-ish text] = value }, count.
local function query(pport, q)
  local escaped = q:gsub("[^%w_]", function(c)
    return string.format("%%%02X", c:byte())
  end)
  local _, body = proc.http("GET", string.format("http://127.0.0.1:%d/api/v1/query?query=%s", pport, escaped))
  local out, n = {}, 0
  for _, r in ipairs(cjson.decode(body).data.result) do
    local keys = proc.sorted_keys(r.metric)
    local parts = {}
    for _, k in ipairs(keys) do
      parts[#parts + 1] = k .. "=" .. r.metric[k]
    end
    out[table.concat(parts, ",")] = r.value[2]
    n = n + 1
  end
  return out, n
end

-- Waits for cond() to be true; on a timeout, the error says what diag() tells.
local function wait_for(cond, timeout, what, diag)
  local deadline = now() + timeout
  repeat
    local v = cond()
    if v then
      return v
    end
    os.execute("sleep 0.1")
  until now() > deadline
  error("timed out waiting for " .. what .. (diag and ("\n" .. diag()) or ""), 2)
end

-- What to look at when a run's series do not reach Prometheus: the samples each
-- receiver holds per instance, the component's health and moonwatch's log.
local function diagnose(h, name, pport)
  return function()
    local per = {}
    for _, s in ipairs(received(name)) do
      local inst = s.labels:match('instance="([^"]*)"') or "?"
      per[inst] = (per[inst] or 0) + 1
    end
    local lines = { "sample receiver: " .. cjson.encode(per) }
    local ok, _, n = pcall(query, pport, '{job="plain"}')
    lines[#lines + 1] = "Prometheus: " .. (ok and (n .. " series of job plain") or "no answer")
    local _, body = proc.http("GET", h.base .. "/api/v0/components")
    lines[#lines + 1] = "components: " .. tostring(body)
    lines[#lines + 1] = "moonwatch log:\n" .. h.read()
    return table.concat(lines, "\n")
  end
end

local function reload(h)
  local status, body = proc.http("POST", h.base .. "/-/reload")
  assert.equals(200, status, body)
end

local function targets(port, ...)
  local t = {}
  for _, inst in ipairs({ ... }) do
    t[#t + 1] = string.format('{ __address__ = "127.0.0.1:%d", instance = %q }', port, inst)
  end
  return "{ " .. table.concat(t, ", ") .. " }"
end

-- The series count of job plain, per instance, as Prometheus answers an instant query now.
local function live(pport, inst)
  local _, n = query(pport, string.format('{job="plain",instance="%s"}', inst))
  return n
end

describe("prometheus.scrape staleness through moonwatch run", function()
  teardown(proc.kill_spawned)

  it("writes no staleness marker when moonwatch stops (SIGTERM): every series stays live", function()
    local pport, tport, rport = services("stop")
    local h = proc.start_run(pipeline("stop", targets(tport, "a"), pport, rport),
      { "--storage.path=" .. tmp .. "/data-stop" })
    finally(function()
      h.kill("KILL")
    end)
    -- the target's 12 series and its 5 report series reached Prometheus, scraped twice at least
    wait_for(function()
      local _, n = query(pport, 'count_over_time(up{job="plain"}[1m]) >= 2')
      return n == 1 and live(pport, "a") == SERIES
    end, 30, "two scrapes in Prometheus", diagnose(h, "stop", pport))
    h.kill("TERM")
    assert.equals(0, h.wait(15))
    assert.same({}, stale("stop"))
    local all = received("stop")
    assert.is_true(#all >= 2 * SERIES, #all .. " samples")
    -- in Prometheus the series are live after the shutdown: a marker would have ended them
    local ups = query(pport, 'up{job="plain"}')
    assert.same({ ["__name__=up,instance=a,job=plain"] = "1" }, ups)
    assert.equals(SERIES, live(pport, "a"))
    local values = query(pport, '{job="plain",__name__=~"plain_.*"}')
    assert.equals("21.5", values["__name__=plain_temperature,instance=a,job=plain"])
    assert.equals("1", values["__name__=plain_empty,b=x,instance=a,job=plain"])
    assert.equals("200", values["__name__=plain_size_bytes,instance=a,job=plain,quantile=0.9"])
    assert.equals("3", values["__name__=plain_latency_seconds_bucket,instance=a,job=plain,le=+Inf"])
  end)

  it("marks a target a reload removed stale two intervals and 10% later, at its next slot", function()
    local pport, tport, rport = services("reload")
    local file = pipeline("reload", targets(tport, "kept", "gone"), pport, rport)
    local h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data-reload" })
    finally(function()
      h.kill("KILL")
    end)
    wait_for(function()
      return live(pport, "kept") == SERIES and live(pport, "gone") == SERIES
    end, 30, "both targets in Prometheus", diagnose(h, "reload", pport))
    pipeline("reload", targets(tport, "kept"), pport, rport)
    local before = now()
    reload(h)
    local removed = now()
    -- its last scrape: the slots of its schedule
    local last_up = 0
    for _, s in ipairs(received("reload")) do
      if s.value ~= "stale" and s.labels:find('__name__="up"', 1, true) and instance("gone")(s) then
        last_up = math.max(last_up, s.ts)
      end
    end
    -- nothing in the first interval: the target may come back
    os.execute("sleep 0.9")
    assert.same({}, stale("reload"))
    assert.equals(SERIES, live(pport, "gone"))
    wait_for(function()
      return #stale("reload", instance("gone")) >= SERIES
    end, 5, "the removed target's markers")
    os.execute("sleep 0.5")
    local markers = stale("reload", instance("gone"))
    assert.equals(SERIES, #markers) -- every series once: 12 scraped, 5 report series
    for _, s in ipairs(markers) do
      assert.equals(markers[1].ts, s.ts)
      -- at the slot after the removal
      assert.is_true(s.ts >= math.floor(before * 1000) and s.ts <= removed * 1000 + 1000,
        string.format("marker at %d, reloaded between %.3f and %.3f", s.ts, before, removed))
      local off = (s.ts - last_up) % 1000
      assert.is_true(off < 60 or off > 940, "marker " .. (s.ts - last_up) .. " ms after the last scrape")
      -- sent one interval and 10% after it (and the batch_send_deadline)
      local after = s.at - s.ts / 1000
      assert.is_true(after >= 1.09 and after < 2, "sent " .. after .. " s after its timestamp")
    end
    assert.same({}, stale("reload", instance("kept")))
    -- Prometheus took them: the removed target's series are gone, the other's live
    wait_for(function()
      return live(pport, "gone") == 0
    end, 5, "the markers in Prometheus")
    assert.equals(SERIES, live(pport, "kept"))
    h.kill("TERM")
    assert.equals(0, h.wait(15))
    assert.same({}, stale("reload", instance("kept")))
    assert.equals(SERIES, live(pport, "kept"))
  end)

  it("writes no marker for a target that a reload removes and the next one brings back in time", function()
    local pport, tport, rport = services("back")
    local file = pipeline("back", targets(tport, "kept", "back"), pport, rport)
    local h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data-back" })
    finally(function()
      h.kill("KILL")
    end)
    wait_for(function()
      return live(pport, "back") == SERIES
    end, 30, "the target in Prometheus", diagnose(h, "back", pport))
    pipeline("back", targets(tport, "kept"), pport, rport)
    reload(h)
    os.execute("sleep 0.5")
    pipeline("back", targets(tport, "kept", "back"), pport, rport)
    reload(h)
    local back = now()
    os.execute("sleep 3.5")
    assert.same({}, stale("back"))
    -- it is scraped on
    local later = 0
    for _, s in ipairs(received("back")) do
      if instance("back")(s) and s.ts > back * 1000 then
        later = later + 1
      end
    end
    assert.is_true(later >= SERIES, later .. " samples since it came back")
    assert.equals(SERIES, live(pport, "back"))
    h.kill("TERM")
    assert.equals(0, h.wait(15))
    assert.same({}, stale("back"))
  end)
end)
