-- The suite's Loki push receiver (tests/e2e/fixtures/loki_receiver.lua) is as strict as Loki:
-- push bodies built by hand (protobuf of Loki's push.proto + snappy, and JSON) are refused with
-- Loki's status codes and messages, and the valid entries of a request are kept. The loki.write
-- specs trust it to refuse what Loki refuses.
local proc = require("helpers.proc")
local cjson = require("cjson")
local loki = require("moonwatch.native.loki")

local tmp = proc.tmpdir()

-- protobuf by hand
local function varint(n)
  local out = {}
  repeat
    local b = n % 128
    n = math.floor(n / 128)
    out[#out + 1] = string.char(n > 0 and b + 128 or b)
  until n == 0
  return table.concat(out)
end

local function field(num, bytes)
  return varint(num * 8 + 2) .. varint(#bytes) .. bytes
end

local function entry(sec, nsec, line)
  local ts = varint(8) .. varint(sec) .. (nsec > 0 and varint(16) .. varint(nsec) or "")
  return field(1, ts) .. field(2, line)
end

-- streams: { { labels, { {sec, nsec, line}, ... } }, ... } -> snappy-compressed PushRequest
local function push_body(streams)
  local parts = {}
  for _, s in ipairs(streams) do
    local st = { field(1, s[1]) }
    for _, e in ipairs(s[2]) do
      st[#st + 1] = field(2, entry(e[1], e[2], e[3]))
    end
    parts[#parts + 1] = field(1, table.concat(st))
  end
  return loki.snappy(table.concat(parts))
end

describe("the suite's Loki receiver", function()
  local port, base
  setup(function()
    port = proc.free_port()
    proc.spawn(string.format("%s lua %s/tests/e2e/fixtures/loki_receiver.lua %d", proc.quote(proc.bin),
      proc.source, port), tmp .. "/receiver.log")
    base = "http://127.0.0.1:" .. port
    proc.wait_http(base .. "/ready")
  end)
  teardown(proc.kill_spawned)

  local function push(body, ctype, tenant)
    local headers = { "Content-Type: " .. (ctype or "application/x-protobuf") }
    if tenant then
      headers[#headers + 1] = "X-Scope-OrgID: " .. tenant
    end
    local f = tmp .. "/body"
    proc.write(f, body)
    return proc.http("POST", base .. "/loki/api/v1/push", { headers = headers, body = "@" .. f })
  end

  local function entries()
    local _, body = proc.http("GET", base .. "/entries")
    return cjson.decode(body).entries
  end

  it("takes a valid protobuf push (204) and keeps its entries with the tenant", function()
    local now = os.time()
    local status = push(push_body({ { '{job="a", env="p"}', { { now, 5, "one" }, { now, 6, "two" } } } }), nil, "t1")
    assert.equals(204, status)
    local got = entries()
    assert.equals(2, #got)
    assert.equals('{job="a", env="p"}', got[1].labels)
    assert.equals("t1", got[1].tenant)
    assert.equals(now .. "000000005", got[1].ts)
    assert.equals("two", got[2].line)
  end)

  it("refuses what Loki refuses, with its messages, and keeps the valid entries of the request", function()
    local now = os.time()
    local before = #entries()
    local status, body = push(push_body({
      { '{job="ok"}', { { now, 0, "kept" }, { now - 8 * 86400, 0, "old" }, { now + 3600, 0, "future" },
        { now, 0, string.rep("x", 256 * 1024 + 1) } } },
      { "{}", { { now, 0, "no labels" } } },
      { '{a="1", a="2"}', { { now, 0, "dup" } } },
      { 'job="x"', { { now, 0, "not a selector" } } },
      { '{1a="x"}', { { now, 0, "bad name" } } },
    }))
    assert.equals(400, status)
    assert.matches("entry for stream '{job=\"ok\"}' has timestamp too old: ", body, 1, true)
    assert.matches("oldest acceptable timestamp is: ", body, 1, true)
    assert.matches("entry for stream '{job=\"ok\"}' has timestamp too new: ", body, 1, true)
    assert.matches("Max entry size '262144' bytes exceeded for stream '{job=\"ok\"}' while adding an entry with"
      .. " length '262145' bytes", body, 1, true)
    assert.matches("error at least one label pair is required per stream", body, 1, true)
    assert.matches("stream '{a=\"1\", a=\"2\"}' has duplicate label name: 'a'", body, 1, true)
    assert.matches("Error parsing labels 'job=\"x\"' with error: parse error at line 1, col 1", body, 1, true)
    assert.matches("Error parsing labels '{1a=\"x\"}' with error: parse error at line 1, col 2", body, 1, true)
    local got = entries()
    assert.equals(before + 1, #got)
    assert.equals("kept", got[#got].line)
    assert.equals("fake", got[#got].tenant)
  end)

  it("refuses bodies that are not snappy or not a PushRequest (400)", function()
    local status, body = push("plain text, not snappy")
    assert.equals(400, status)
    assert.matches("snappy", body)
    status, body = push(loki.snappy("\255\255\255\255"))
    assert.equals(400, status)
    assert.matches("proto", body)
  end)

  it("takes JSON pushes as Loki's loghttp does, and refuses bad label names in them", function()
    local now = os.time()
    local status = push(cjson.encode({ streams = { { stream = { job = "json" },
      values = { { now .. "000000007", "from json", { trace_id = "abc" } } } } } }), "application/json")
    assert.equals(204, status)
    local got = entries()
    assert.same({ '{job="json"}', now .. "000000007", "from json", "abc" },
      { got[#got].labels, got[#got].ts, got[#got].line, got[#got].metadata.trace_id })
    local body
    status, body = push(cjson.encode({ streams = { { stream = { ["bad-name"] = "x" },
      values = { { now .. "000000000", "x" } } } } }), "application/json")
    assert.equals(400, status)
    assert.matches("Error parsing labels '{bad-name=\"x\"}'", body, 1, true)
  end)
end)
