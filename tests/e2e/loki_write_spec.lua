-- End-to-end: loki.write through `moonwatch run` against the suite's strict Loki push receiver
-- (tests/e2e/fixtures/loki_receiver.lua: Loki's push.proto, snappy, Loki's validation): what
-- arrives, with which labels, tenant and metadata; 4xx dropped and counted; 5xx and 429
-- retried; a receiver down then up; SIGKILL and restart; the queue's bounds; secrets.
local proc = require("helpers.proc")
local cjson = require("cjson")
local ffi_rt = require("moonwatch.ffi")

local FIXTURES = proc.source .. "/tests/lua/fixtures/components"
local tmp = proc.tmpdir()

local logs = require("helpers.logs")

local function start_receiver(port)
  return logs.start_receiver(tmp, port)
end

local receiver_get = logs.receiver_get

local function control(port, query)
  assert.equals(200, (proc.http("POST", "http://127.0.0.1:" .. port .. "/control?" .. query)))
end

local metric = proc.metric

local function wait_for(pred, timeout, what)
  return proc.wait_for(pred, timeout or 15, what or "a condition")
end

local function health(h)
  local _, body = proc.http("GET", h.base .. "/api/v0/components/loki.write.w")
  return cjson.decode(body).health
end

-- The seq numbers the receiver accepted, each with how many times; checks that each stream's
-- entries arrived in order (a resend repeats a suffix of what came before, never reorders).
local function seqs(port)
  local count, last, n = {}, {}, 0
  for _, e in ipairs(receiver_get(port, "entries")) do
    local s = tonumber(e.line:match("^seq=(%d+)"))
    count[s] = (count[s] or 0) + 1
    n = n + 1
    if count[s] == 1 then
      assert.is_true(s > (last[e.labels] or 0), "out of order in " .. e.labels .. ": " .. s)
      last[e.labels] = s
    end
  end
  return count, n
end

local function seq_file(path)
  local f = io.open(path)
  local n = f and tonumber(f:read("*l") or "") or 0
  if f then
    f:close()
  end
  return n
end

-- A pipeline: a test source (Lua text) into loki.write "w" with endpoint arguments (Lua text).
local function pipeline(name, source, endpoint, extra)
  return proc.write(tmp .. "/" .. name .. ".lua", string.format([[
%s
loki.write "w" {
  endpoint = { %s },
  %s
}
]], source, endpoint, extra or ""))
end

local function run(file, name)
  return proc.start_run(file, { "--component.path=" .. FIXTURES, "--storage.path=" .. tmp .. "/data-" .. name })
end

-- run, killed when the test ends (inside an it)
local function run_killed(file, name)
  local h = run(file, name)
  finally(function()
    h.kill("KILL")
  end)
  return h
end

describe("loki.write", function()
  teardown(proc.kill_spawned)

  it("delivers every entry once, in order per stream, with labels, external labels, tenant and metadata;"
    .. " never shows a secret", function()
    local port = start_receiver()
    local now = os.time()
    local f = pipeline("basic", string.format([[
test.logsource "s" {
  entries = {
    { labels = { job = "app", env = "prod" }, line = 'GET / 200 "ok"', ts = %d.25 },
    { labels = { job = "app" }, line = "two\nlines", ts = %d, metadata = { trace_id = "abc" } },
    { labels = { job = "app", env = "prod" }, line = "third", ts = %d.5 },
    { labels = { job = "app", cluster = "mine" }, line = "own cluster label wins", ts = %d },
  },
  forward_to = { loki.write.w.receiver },
}]], now, now, now, now), string.format([[{
    url = "http://127.0.0.1:%d/loki/api/v1/push", tenant_id = "team-a", batch_wait = "100ms",
    basic_auth = { username = "user", password = "pa55word-secret" },
    headers = { ["X-Custom"] = "header-secret" },
  }]], port), 'external_labels = { cluster = "eu-1" },')
    local h = run_killed(f, "basic")
    wait_for(function()
      return #receiver_get(port, "entries") == 4
    end, 10, "4 entries")
    local got = {}
    for _, e in ipairs(receiver_get(port, "entries")) do
      got[#got + 1] = { e.tenant, e.labels, e.ts, e.line, e.metadata.trace_id }
    end
    assert.same({
      { "team-a", '{cluster="eu-1", env="prod", job="app"}', now .. "250000000", 'GET / 200 "ok"' },
      { "team-a", '{cluster="eu-1", env="prod", job="app"}', now .. "500000000", "third" },
      { "team-a", '{cluster="eu-1", job="app"}', now .. "000000000", "two\nlines", "abc" },
      { "team-a", '{cluster="mine", job="app"}', now .. "000000000", "own cluster label wins" },
    }, got)
    local reqs = receiver_get(port, "requests")
    assert.equals(1, #reqs)
    assert.equals("application/x-protobuf", reqs[1].content_type)
    assert.equals("Basic dXNlcjpwYTU1d29yZC1zZWNyZXQ=", reqs[1].authorization)
    assert.equals("header-secret", reqs[1].custom)
    assert.matches("^moonwatch/", reqs[1].user_agent)
    local host = 'host="127.0.0.1:' .. port .. '"'
    assert.equals(4, metric(h, "loki_write_sent_entries_total", host .. ',tenant="team-a"'))
    assert.is_true(metric(h, "loki_write_sent_bytes_total", host) > 0)
    assert.equals(1, metric(h, "loki_write_request_duration_seconds_count", 'status_code="204"'))
    -- Alloy's request size histogram: the body sent (snappy protobuf), its buckets from 1KiB to 20MiB
    assert.equals(1, metric(h, "loki_write_request_size_bytes_count", host .. ',tenant="team-a"'))
    assert.equals(metric(h, "loki_write_sent_bytes_total", host), metric(h, "loki_write_request_size_bytes_sum", host))
    assert.equals(1, metric(h, "loki_write_request_size_bytes_bucket", 'le="1024"'))
    assert.equals(1, metric(h, "loki_write_request_size_bytes_bucket", 'le="2.097152e+07"'))
    -- secrets: nowhere in the debug API, the metrics or the log
    local _, api = proc.http("GET", h.base .. "/api/v0/components/loki.write.w")
    local _, metrics = proc.http("GET", h.base .. "/metrics")
    h.kill("TERM")
    assert.equals(0, h.wait(15))
    for _, text in ipairs({ api, metrics, h.read(), h.read("out") }) do
      assert.is_nil(text:find("pa55word", 1, true))
      assert.is_nil(text:find("header-secret", 1, true))
    end
  end)

  it("lets an entry's __tenant_id__, tenant_id and the protocol's headers win over custom headers, as Alloy",
    function()
    local port = start_receiver()
    local now = os.time()
    -- Alloy's loki.write adds a custom header only when the request does not have it yet: a
    -- headers X-Scope-OrgID is the tenant of entries without one; Content-Type stays protobuf
    local f = pipeline("hdrs", string.format([[
test.logsource "s" {
  entries = {
    { labels = { job = "app", __tenant_id__ = "from-entry" }, line = "one", ts = %d },
  },
  forward_to = { loki.write.w.receiver },
}
test.logsource "plain" {
  entries = { { labels = { job = "plain" }, line = "two", ts = %d } },
  forward_to = { loki.write.w.receiver },
}]], now, now), string.format([[{
    url = "http://127.0.0.1:%d/loki/api/v1/push", batch_wait = "100ms",
    headers = { ["X-Scope-OrgID"] = "from-header", ["content-type"] = "application/json" },
  }]], port))
    local h = run_killed(f, "hdrs")
    wait_for(function()
      return #receiver_get(port, "entries") == 2
    end, 10, "2 entries")
    local got = {}
    for _, e in ipairs(receiver_get(port, "entries")) do
      got[e.line] = e.tenant
    end
    assert.same({ one = "from-entry", two = "from-header" }, got)
    for _, r in ipairs(receiver_get(port, "requests")) do
      assert.equals("application/x-protobuf", r.content_type)
    end
    -- as Alloy's, every drop reason's counters exist at 0 from the start (rate() sees a first drop)
    local _, text = proc.http("GET", h.base .. "/metrics")
    for _, tenant in ipairs({ "", "from%-entry" }) do
      for _, reason in ipairs({ "ingester_error", "rate_limited", "stream_limited", "line_too_long" }) do
        for _, name in ipairs({ "loki_write_dropped_entries_total", "loki_write_dropped_bytes_total" }) do
          assert.is_truthy(text:find(string.format('\n%s{[^}]*tenant="%s"[^}]*reason="%s"} 0\n', name, tenant,
            reason)) or text:find(string.format('\n%s{[^}]*reason="%s"[^}]*tenant="%s"[^}]*} 0\n', name, reason,
            tenant)), name .. " " .. tenant .. " " .. reason)
        end
      end
    end
    -- the metrics' tenant label is the request's tenant, as Alloy's (tenant_id's without one)
    assert.equals(1, metric(h, "loki_write_sent_entries_total", 'tenant="from-entry"'))
    assert.equals(1, metric(h, "loki_write_sent_entries_total", 'tenant=""'))
    assert.equals(1, metric(h, "loki_write_request_duration_seconds_count", 'tenant="from-entry"'))
  end)

  it("sends a long __tenant_id__ as it is, and drops one that cannot be a header at once, naming it", function()
    local port = start_receiver()
    local now = os.time()
    local long = string.rep("t", 300)
    local f = pipeline("badtenant", string.format([[
test.logsource "s" {
  entries = {
    { labels = { job = "app", __tenant_id__ = "bad\r\nX-Injected: 1" }, line = "bad", ts = %d },
    { labels = { job = "app", __tenant_id__ = %q }, line = "long", ts = %d },
    { labels = { job = "app" }, line = "plain", ts = %d },
  },
  forward_to = { loki.write.w.receiver },
}]], now, long, now, now), string.format([[{
    url = "http://127.0.0.1:%d/loki/api/v1/push", batch_wait = "100ms", tenant_id = "default",
    min_backoff_period = "50ms", max_backoff_period = "100ms", max_backoff_retries = 0,
  }]], port))
    local h = run_killed(f, "badtenant")
    wait_for(function()
      return #receiver_get(port, "entries") == 2
    end, 10, "2 entries")
    local got = {}
    for _, e in ipairs(receiver_get(port, "entries")) do
      got[e.line] = e.tenant
    end
    -- a tenant too long for Loki goes to Loki (which refuses it), never to tenant_id's tenant
    assert.same({ long = long, plain = "default" }, got)
    assert.equals(1, metric(h, "loki_write_dropped_entries_total", 'reason="ingester_error"'))
    assert.equals(0, metric(h, "loki_write_batch_retries_total"))
    assert.matches("invalid tenant", h.read(), 1, true)
  end)

  it("names an endpoint by its URL without the password, going on from a cursor of the older name", function()
    local core = require("moonwatch.native.core")
    local port = start_receiver()
    local url = string.format("http://user:s3cret-pw@127.0.0.1:%d/loki/api/v1/push", port)
    local f = pipeline("pwname", [[
test.logsource "s" {
  entries = { { labels = { job = "app" }, line = "one" } },
  forward_to = { loki.write.w.receiver },
}]], string.format('{ url = %q, batch_wait = "100ms" }', url))
    local h = run(f, "pwname")
    finally(function()
      h.kill("KILL")
    end)
    wait_for(function()
      return #receiver_get(port, "entries") == 1
    end, 10, "1 entry")
    -- a hash of the password would let whoever reads the debug API test guesses of it offline
    local old, new = core.sha256_hex(url, 12), core.sha256_hex(url:gsub("s3cret%-pw", "xxxxx"), 12)
    local _, api = proc.http("GET", h.base .. "/api/v0/components/loki.write.w")
    assert.is_nil(api:find(old, 1, true))
    assert.is_truthy(api:find(new, 1, true))
    h.kill("TERM")
    assert.equals(0, h.wait(15))
    -- as an older version left it: its cursor under the older name; nothing is sent again
    local dir = tmp .. "/data-pwname/loki.write.w/"
    assert(os.rename(dir .. "cursor." .. new, dir .. "cursor." .. old))
    h = run(f, "pwname")
    wait_for(function()
      return metric(h, "loki_write_sent_entries_total") >= 1
    end, 10, "a send after the restart")
    assert.equals(2, #receiver_get(port, "entries"))
  end)

  it("refuses bad arguments, naming the file, line and argument", function()
    local f = proc.write(tmp .. "/bad.lua", [[
loki.echo "e" {}
loki.write "w" {
  endpoint = { url = "loki:3100/loki/api/v1/push", batch_size = "1 lots" },
  external_labels = { ["bad-name"] = "x" },
}
]])
    local code, _, err = proc.run({ "check", f })
    assert.equals(1, code)
    assert.matches("bad.lua:2: loki.write \"w\": endpoint.batch_size: expected a size", err, 1, true)
    f = proc.write(tmp .. "/bad2.lua", [[
loki.write "w" {
  endpoint = { url = "loki:3100/loki/api/v1/push" },
  external_labels = { ["bad-name"] = "x" },
}
]])
    code, _, err = proc.run({ "check", f })
    assert.equals(1, code)
    assert.matches("bad2.lua:1: loki.write \"w\": endpoint: url: must start with http:// or https://", err, 1, true)
    f = proc.write(tmp .. "/bad3.lua", [[
loki.write "w" {
  endpoint = { url = "http://loki:3100/loki/api/v1/push" },
  external_labels = { ["bad-name"] = "x" },
}
]])
    code, _, err = proc.run({ "check", f })
    assert.equals(1, code)
    assert.matches('bad3.lua:1: loki.write "w": external_labels: invalid label name "bad-name"', err, 1, true)
    -- what no HTTP request can carry would fail every request, retried forever
    f = proc.write(tmp .. "/bad4.lua", [[
loki.write "w" {
  endpoint = { url = "http://loki:3100/loki/api/v1/push", tenant_id = "a\nb" },
}
]])
    code, _, err = proc.run({ "check", f })
    assert.equals(1, code)
    assert.matches('bad4.lua:1: loki.write "w": endpoint: tenant_id: a control character', err, 1, true)
    f = proc.write(tmp .. "/bad5.lua", [[
loki.write "w" {
  endpoint = { url = "http://loki:3100/loki/api/v1/push", headers = { ["X-Token"] = "sec\r\nret" } },
}
]])
    code, _, err = proc.run({ "check", f })
    assert.equals(1, code)
    assert.matches('bad5.lua:1: loki.write "w": endpoint: headers: the value of "X-Token": a control character', err, 1,
      true)
    assert.is_nil(err:find("sec", 1, true))
  end)

  it("sends Loki's JSON push bodies with encoding = \"json\" (debugging)", function()
    local port = start_receiver()
    local now = os.time()
    local f = pipeline("json", string.format([[
test.logsource "s" {
  entries = {
    { labels = { job = "app" }, line = 'say "hi"\tnow \255', ts = %d.5, metadata = { trace_id = "abc" } },
    { labels = { job = "db" }, line = "two", ts = %d },
  },
  forward_to = { loki.write.w.receiver },
}]], now, now), string.format([[{ url = "http://127.0.0.1:%d/loki/api/v1/push", batch_wait = "50ms",
    encoding = "json" }]], port), 'external_labels = { cluster = "c" },')
    run_killed(f, "json")
    wait_for(function()
      return #receiver_get(port, "entries") == 2
    end, 10, "2 entries")
    local got = {}
    for _, e in ipairs(receiver_get(port, "entries")) do
      got[#got + 1] = { e.labels, e.ts, e.line, e.metadata.trace_id }
    end
    -- invalid UTF-8 becomes U+FFFD, as Go's encoding/json writes it
    assert.same({
      { '{cluster="c", job="app"}', now .. "500000000", 'say "hi"\tnow \239\191\189', "abc" },
      { '{cluster="c", job="db"}', now .. "000000000", "two" },
    }, got)
    assert.equals("application/json", receiver_get(port, "requests")[1].content_type)
  end)

  it("sends full requests (batch_size) at once, without waiting for batch_wait", function()
    local port = start_receiver()
    local f = pipeline("full", string.format([[
test.logseq "s" { file = %q, per_tick = 100, interval = "10ms", line_bytes = 90, stop_after = 400,
  forward_to = { loki.write.w.receiver } }
]], tmp .. "/full.seq"), string.format('{ url = "http://127.0.0.1:%d/loki/api/v1/push", batch_wait = "60s",'
      .. ' batch_size = 1000 }', port))
    run_killed(f, "full")
    -- 36 kB in requests of at most 1000 bytes (11 lines, 990 bytes): all but the last one go at once
    wait_for(function()
      return select(2, seqs(port)) >= 390
    end, 10, "full requests")
    for _, r in ipairs(receiver_get(port, "requests")) do
      assert.is_true(r.entries <= 11)
    end
  end)

  it("drops and counts what the receiver refuses (4xx), and sends what follows", function()
    local port = start_receiver()
    local f = pipeline("reject", [[
test.logsource "old" {
  entries = { { labels = { job = "old" }, line = "from 1970", ts = 1000 } },
  forward_to = { loki.write.w.receiver },
}
test.logsource "later" {
  entries = { { labels = { job = "new" }, line = "fresh" } },
  interval = "300ms",
  forward_to = { loki.write.w.receiver },
}]], string.format('{ url = "http://127.0.0.1:%d/loki/api/v1/push", batch_wait = "50ms", batch_size = 30 }', port))
    local h = run_killed(f, "reject")
    wait_for(function()
      return metric(h, "loki_write_dropped_entries_total", 'reason="ingester_error"') >= 1
        and metric(h, "loki_write_sent_entries_total") >= 2
    end, 10, "a drop and sends")
    local refused
    for _, r in ipairs(receiver_get(port, "requests")) do
      if r.status == 400 then
        refused = r.error
      end
    end
    assert.matches("entry for stream '{job=\"old\"}' has timestamp too old: 1970-01-01 00:16:40 +0000 UTC", refused,
      1, true)
    for _, e in ipairs(receiver_get(port, "entries")) do
      assert.equals("fresh", e.line)
    end
    assert.equals(0, metric(h, "loki_write_batch_retries_total"))
    assert.equals(1, metric(h, "loki_write_request_duration_seconds_count", 'status_code="400"'))
    assert.is_true(h.read():find("final error sending batch", 1, true) ~= nil)
  end)

  it("retries 5xx and 429 with backoff, then delivers everything once", function()
    local port = start_receiver()
    control(port, "plan=500,429,500,429")
    local f = pipeline("retry", string.format([[
test.logseq "s" { file = %q, per_tick = 50, interval = "20ms", stop_after = 200, forward_to = { loki.write.w.receiver } }
]], tmp .. "/retry.seq"), string.format([[{ url = "http://127.0.0.1:%d/loki/api/v1/push", batch_wait = "50ms",
    min_backoff_period = "50ms", max_backoff_period = "200ms" }]], port))
    local h = run_killed(f, "retry")
    wait_for(function()
      return metric(h, "loki_write_sent_entries_total") == 200
    end, 15, "200 entries sent")
    local count, n = seqs(port)
    assert.equals(200, n)
    for s = 1, 200 do
      assert.equals(1, count[s], "seq " .. s)
    end
    assert.equals(4, metric(h, "loki_write_batch_retries_total"))
    assert.equals(2, metric(h, "loki_write_request_duration_seconds_count", 'status_code="500"'))
    assert.equals(2, metric(h, "loki_write_request_duration_seconds_count", 'status_code="429"'))
    assert.equals(0, metric(h, "loki_write_dropped_entries_total"))
  end)

  it("gives a request max_backoff_retries attempts in all, as Alloy (dskit's backoff), then drops it", function()
    local port = start_receiver()
    control(port, "status=500&n=1000")
    local f = pipeline("attempts", [[
test.logsource "s" { entries = { { labels = { job = "app" }, line = "never taken" } }, forward_to = { loki.write.w.receiver } }
]], string.format([[{ url = "http://127.0.0.1:%d/loki/api/v1/push", batch_wait = "50ms",
    min_backoff_period = "20ms", max_backoff_period = "40ms", max_backoff_retries = 3 }]], port))
    local h = run_killed(f, "attempts")
    wait_for(function()
      return metric(h, "loki_write_dropped_entries_total", 'reason="ingester_error"') == 1
    end, 10, "the entry dropped")
    os.execute("sleep 0.5") -- no attempt after the drop
    assert.equals(3, #receiver_get(port, "requests"))
    assert.equals(3, metric(h, "loki_write_request_duration_seconds_count", 'status_code="500"'))
    -- Alloy counts every failed attempt as a retry, the last one too
    assert.equals(3, metric(h, "loki_write_batch_retries_total"))
    -- the request size is observed once per request, not per attempt
    assert.equals(1, metric(h, "loki_write_request_size_bytes_count"))
    assert.matches("final error sending batch after all retries.-attempts=3", h.read())
  end)

  it("accepts Alloy's queue_config where it can honour it and refuses what it cannot, naming it", function()
    local f = proc.write(tmp .. "/qc.lua", [[
loki.write "w" {
  endpoint = { url = "http://loki:3100/loki/api/v1/push",
    queue_config = { capacity = "20MiB", min_shards = 1, drain_timeout = "30s", block_on_overflow = false } },
}
]])
    local code, _, err = proc.run({ "check", f })
    assert.equals(0, code, err)
    f = proc.write(tmp .. "/qc2.lua", [[
loki.write "w" {
  endpoint = { url = "http://loki:3100/loki/api/v1/push", queue_config = { min_shards = 4 } },
}
]])
    code, _, err = proc.run({ "check", f })
    assert.equals(1, code)
    assert.matches('qc2.lua:1: loki.write "w": endpoint.queue_config.min_shards: moonwatch sends one request at a'
      .. ' time per endpoint', err, 1, true)
    f = proc.write(tmp .. "/qc3.lua", [[
loki.write "w" {
  endpoint = { url = "http://loki:3100/loki/api/v1/push", queue_config = { block_on_overflow = true } },
}
]])
    code, _, err = proc.run({ "check", f })
    assert.equals(1, code)
    assert.matches('qc3.lua:1: loki.write "w": endpoint.queue_config.block_on_overflow: moonwatch\'s queue is on'
      .. ' disk and never blocks', err, 1, true)
    f = proc.write(tmp .. "/qc4.lua", [[
loki.write "w" {
  endpoint = { url = "http://loki:3100/loki/api/v1/push", queue_config = { capacity = 0, drain_timeout = "-1s" } },
}
]])
    code, _, err = proc.run({ "check", f })
    assert.equals(1, code)
    assert.matches("endpoint.queue_config.capacity: must be at least 1", err, 1, true)
    assert.matches("endpoint.queue_config.drain_timeout:", err, 1, true)
  end)

  it("stops after queue_config.drain_timeout with entries still queued, and sends them after the restart",
    function()
    local port = start_receiver()
    control(port, "latency=0.4")
    local seqf = tmp .. "/drain.seq"
    local f = pipeline("drain", string.format([[
test.logseq "s" { file = %q, per_tick = 50, interval = "10ms", line_bytes = 90, stop_after = 300,
  forward_to = { loki.write.w.receiver } }
]], seqf), string.format([[{ url = "http://127.0.0.1:%d/loki/api/v1/push", batch_wait = "50ms", batch_size = 500,
    queue_config = { drain_timeout = "1s" } }]], port))
    local h = run_killed(f, "drain")
    wait_for(function()
      return seq_file(seqf) == 300 and #receiver_get(port, "requests") >= 1
    end, 10, "300 entries queued, a request made")
    local t0 = ffi_rt.monotonic()
    h.kill("TERM")
    assert.equals(0, h.wait(15))
    -- 300 entries in requests of 5, 0.4 s each: 24 s to send them all; the stop waits 1 s (the
    -- default was 5 s), the request in flight then ends it
    local took = ffi_rt.monotonic() - t0
    assert.is_true(took < 3.5, "stopped in " .. took .. " s")
    assert.matches("stopping with entries not yet sent.-drain_timeout=1s", h.read())
    control(port, "latency=0")
    local h2 = run(f, "drain")
    finally(function()
      h2.kill("KILL")
    end)
    wait_for(function()
      local count = seqs(port)
      for s = 1, 300 do
        if not count[s] then
          return false
        end
      end
      return true
    end, 15, "all 300 entries after the restart")
  end)

  it("loses nothing while the receiver is down, unhealthy meanwhile, and delivers once it is up", function()
    local port = proc.free_port()
    local seqf = tmp .. "/down.seq"
    local f = pipeline("down", string.format([[
test.logseq "s" { file = %q, per_tick = 20, interval = "50ms", stop_after = 600, forward_to = { loki.write.w.receiver } }
]], seqf), string.format([[{ url = "http://127.0.0.1:%d/loki/api/v1/push", batch_wait = "100ms",
    min_backoff_period = "50ms", max_backoff_period = "300ms", max_backoff_retries = 0 }]], port))
    local h = run_killed(f, "down")
    wait_for(function()
      return health(h).state == "unhealthy"
    end, 10, "unhealthy")
    assert.matches("failed attempts in a row; last error: ", health(h).message, 1, true)
    assert.matches("refused", health(h).message, 1, true)
    assert.is_true(metric(h, "loki_write_pending_entries") > 0)
    start_receiver(port)
    wait_for(function()
      return seq_file(seqf) == 600 and metric(h, "loki_write_sent_entries_total") == 600
    end, 20, "600 entries sent")
    local count, n = seqs(port)
    assert.equals(600, n)
    for s = 1, 600 do
      assert.equals(1, count[s], "seq " .. s)
    end
    wait_for(function()
      return health(h).state == "healthy"
    end, 5, "healthy again")
    assert.equals(0, metric(h, "loki_write_dropped_entries_total"))
  end)

  it("reports a queue it cannot read in its health", function()
    local port = proc.free_port()
    local f = pipeline("unreadable", string.format([[
test.logseq "s" { file = %q, per_tick = 5, interval = "100ms", forward_to = { loki.write.w.receiver } }
]], tmp .. "/unreadable.seq"), string.format([[{ url = "http://127.0.0.1:%d/loki/api/v1/push", batch_wait = "100ms",
    min_backoff_period = "50ms", max_backoff_period = "200ms", max_backoff_retries = 0 }]], port))
    local h = run_killed(f, "unreadable")
    -- the receiver is down: the endpoint holds its first segment while the queue moves on to a
    -- second one (every 5 s), which is then made unreadable (a directory in its place)
    local qdir = tmp .. "/data-unreadable/loki.write.w/queue"
    local segs
    wait_for(function()
      segs = {}
      for name in io.popen("ls " .. qdir):lines() do
        if name:match("^%d+$") then
          segs[#segs + 1] = name
        end
      end
      table.sort(segs)
      return #segs >= 2
    end, 15, "a second segment")
    for i = 2, #segs do
      assert(os.remove(qdir .. "/" .. segs[i]))
      assert(os.execute("mkdir " .. qdir .. "/" .. segs[i]))
    end
    start_receiver(port)
    wait_for(function()
      local hh = health(h)
      return hh.state == "unhealthy" and hh.message:find("reading the queue", 1, true) ~= nil
    end, 15, "unhealthy: reading the queue")
  end)

  it("loses nothing acknowledged when killed with SIGKILL, and sends it after a restart", function()
    local port = start_receiver()
    local seqf = tmp .. "/kill.seq"
    local f = pipeline("kill", string.format([[
test.logseq "s" { file = %q, per_tick = 100, interval = "10ms", forward_to = { loki.write.w.receiver } }
]], seqf), string.format([[{ url = "http://127.0.0.1:%d/loki/api/v1/push", batch_wait = "200ms",
    batch_size = 4096, min_backoff_period = "50ms", max_backoff_period = "200ms" }]], port),
      'queue = { fsync = "interval", fsync_interval = "100ms" },')
    -- slow answers: requests are in flight and entries queued when the kill comes
    control(port, "latency=0.05")
    local h = run(f, "kill")
    wait_for(function()
      return seq_file(seqf) > 3000
    end, 20, "3000 entries appended")
    h.kill("KILL")
    assert.equals(137, h.wait(10))
    local acked = seq_file(seqf)
    local _, before = seqs(port)
    assert.is_true(before < acked, "some entries were still queued at the kill")
    control(port, "latency=0")
    -- the restarted pipeline sends what was queued, then new entries; stop it gracefully
    h = run(f, "kill")
    finally(function()
      h.kill("KILL")
    end)
    wait_for(function()
      local count = seqs(port)
      for s = 1, acked do
        if not count[s] then
          return false
        end
      end
      return true
    end, 20, "every acknowledged entry")
    h.kill("TERM")
    assert.equals(0, h.wait(15))
    local count, n = seqs(port)
    local final, dups = seq_file(seqf), 0
    for s = 1, final do
      assert.is_not_nil(count[s], "seq " .. s .. " lost")
      dups = dups + count[s] - 1
    end
    -- duplicates: what was in flight at the kill (one request of at most batch_size bytes of lines
    -- of 8 bytes), and the source's own: test.logseq notes its last seq after each tick's send, so
    -- a kill between the two makes the restarted source send that tick (per_tick = 100) again
    assert.is_true(dups <= 4096 / 8 + 100, "duplicates " .. dups)
    assert.equals(final + dups, n)
  end)

  it("keeps its queue across a reload: a changed endpoint goes on from its cursor, nothing lost", function()
    local port = start_receiver()
    local seqf = tmp .. "/reload.seq"
    local function write(tenant)
      return pipeline("reload", string.format([[
test.logseq "s" { file = %q, per_tick = 20, interval = "20ms", stop_after = 2000,
  forward_to = { loki.write.w.receiver } }
]], seqf), string.format([[{ name = "main", url = "http://127.0.0.1:%d/loki/api/v1/push", batch_wait = "50ms",
    batch_size = 2000, tenant_id = %q }]], port, tenant))
    end
    local f = write("before")
    local h = run_killed(f, "reload")
    wait_for(function()
      return seq_file(seqf) >= 500
    end, 10, "500 entries")
    write("after")
    local status = proc.http("POST", h.base .. "/-/reload")
    assert.equals(200, status)
    wait_for(function()
      local count = seqs(port)
      for i = 1, 2000 do
        if not count[i] then
          return false
        end
      end
      return true
    end, 20, "2000 entries")
    -- a request in flight when the endpoint was replaced may come twice (at most one: 2000 bytes)
    local _, n = seqs(port)
    assert.is_true(n - 2000 <= 2000 / 8, "duplicates " .. (n - 2000))
    local tenants = {}
    for _, e in ipairs(receiver_get(port, "entries")) do
      tenants[e.tenant] = (tenants[e.tenant] or 0) + 1
    end
    assert.is_true(tenants.before > 0 and tenants.after > 0)
  end)

  it("keeps the queue within max_size and max_age, counting what it drops", function()
    local port = proc.free_port()
    local f = pipeline("bounds", string.format([[
test.logseq "s" { file = %q, per_tick = 200, interval = "20ms", line_bytes = 200, stop_after = 8000,
  forward_to = { loki.write.w.receiver } }
]], tmp .. "/bounds.seq"), string.format([[{ url = "http://127.0.0.1:%d/loki/api/v1/push", batch_wait = "100ms",
    min_backoff_period = "50ms", max_backoff_period = "100ms", max_backoff_retries = 0 }]], port),
      'queue = { max_size = "256KiB", max_age = "3s" },')
    local h = run_killed(f, "bounds")
    wait_for(function()
      return metric(h, "loki_write_dropped_entries_total", 'reason="queue_full"') > 0
    end, 15, "queue_full drops")
    assert.is_true(metric(h, "loki_write_queue_bytes") <= 256 * 1024 + 64 * 1024)
    wait_for(function()
      return metric(h, "loki_write_dropped_entries_total", 'reason="too_old"') > 0
    end, 15, "too_old drops")
    start_receiver(port)
    wait_for(function()
      return metric(h, "loki_write_pending_entries") == 0 and seq_file(tmp .. "/bounds.seq") == 8000
    end, 20, "nothing pending")
    local _, n = seqs(port)
    local dropped = metric(h, "loki_write_dropped_entries_total")
    -- every entry is either delivered or counted as dropped (the request in flight at a drop may repeat)
    assert.is_true(n + dropped >= 8000, n .. " + " .. dropped)
    assert.equals(8000, metric(h, "loki_write_queue_entries_appended_total"))
  end)
end)
