-- loki.write's C half (moonwatch.native.loki): entries appended to the logs queue come out of
-- an endpoint reader as PushRequests that Loki's push.proto (protobuf-c) decodes to exactly
-- the entries, grouped by stream in order, with external labels merged, cut at batch_size and
-- max_streams, and resent after a rewind; stream label strings parse as Loki parses them.
local logs = require("moonwatch.batch.logs")
local loki = require("moonwatch.native.loki")
local proc = require("helpers.proc")

local tmp = proc.tmpdir()

local function batch(list)
  local b = logs.new()
  for _, e in ipairs(list) do
    logs.add(b, e[1], e[2], e[3], e[4], e[5])
  end
  return b
end

local function flat(streams)
  local out = {}
  for _, s in ipairs(streams) do
    for _, e in ipairs(s.entries) do
      local m = {}
      for _, p in ipairs(e.metadata) do
        m[#m + 1] = p[1] .. "=" .. p[2]
      end
      out[#out + 1] = { s.labels, e.sec, e.nsec, e.line, table.concat(m, ",") }
    end
  end
  return out
end

describe("loki push requests from the logs queue", function()
  it("groups entries by stream, keeps their order, timestamps, bytes and metadata", function()
    local q = assert(loki.open_queue(tmp .. "/q1"))
    assert(q:append(batch({
      { { job = "a" }, 1700000000, 5, "one", { trace_id = "t1" } },
      { { job = "b", env = 'q"x\n' }, 1700000001, 0, "two\0bytes\255" },
      { { job = "a" }, 1700000002, 999999999, "three" },
    }), 1000))
    assert(q:append(batch({ { { job = "a" }, 1, 0, "" } }), 1001))
    local r = assert(q:reader("ep"))
    r:configure(1024 * 1024, 0, "cluster\255eu\255job\255ext\255")
    local req = assert(r:next())
    assert.equal(4, req.entries)
    assert.equal(2, req.streams)
    local streams = assert(loki.decode_push(req.body, true))
    assert.same({
      { '{cluster="eu", job="a"}', 1700000000, 5, "one", "trace_id=t1" },
      { '{cluster="eu", job="a"}', 1700000002, 999999999, "three", "" },
      { '{cluster="eu", job="a"}', 1, 0, "", "" },
      { '{cluster="eu", env="q\\"x\\n", job="b"}', 1700000001, 0, "two\0bytes\255", "" },
    }, flat(streams))
    assert.is_false(r:next())
    -- not committed: a rewind reads it all again; committed: a new reader starts after it
    r:rewind()
    assert.equal(4, assert(r:next()).entries)
    assert(r:commit())
    r:close()
    r = assert(q:reader("ep"))
    r:configure(1024, 0, "")
    assert.is_false(r:next())
    assert(q:append(batch({ { { job = "c" }, 2, 0, "after" } }), 1002))
    assert.same({ { '{job="c"}', 2, 0, "after", "" } }, flat(loki.decode_push(assert(r:next()).body, true)))
    r:close()
    q:close()
  end)

  it("replays the queue at open: what no reader committed is read again after a restart", function()
    local q = assert(loki.open_queue(tmp .. "/q3"))
    assert(q:append(batch({ { { job = "a" }, 1, 0, "one" }, { { job = "b" }, 2, 0, "two" } }), 1))
    assert(q:append(batch({ { { job = "a" }, 3, 0, "three" } }), 2))
    local r = assert(q:reader("ep"))
    r:configure(3, 0, "") -- one entry per request
    assert.equal(1, assert(r:next()).entries)
    assert(r:commit())
    r:close()
    q:close()
    q = assert(loki.open_queue(tmp .. "/q3"))
    assert.equal("", q:repair_log())
    assert.equal(3, tonumber(q:stats().replayed_entries))
    r = assert(q:reader("ep"))
    r:configure(1024, 0, "")
    assert.same({ { '{job="b"}', 2, 0, "two", "" }, { '{job="a"}', 3, 0, "three", "" } },
      flat(loki.decode_push(assert(r:next()).body, true)))
    r:close()
    q:close()
  end)

  it("takes a batch larger than a record (8 MiB) as several records, all read back in order", function()
    local q = assert(loki.open_queue(tmp .. "/q4"))
    local list = {}
    for i = 1, 20 do
      list[i] = { { job = "big", n = tostring(i % 2) }, i, 0, string.rep(string.char(64 + i), 1024 * 1024) }
    end
    assert(q:append(batch(list), 1))
    q:close()
    q = assert(loki.open_queue(tmp .. "/q4")) -- replayed whole
    assert.equal(20, tonumber(q:stats().replayed_entries))
    local r = assert(q:reader("ep"))
    r:configure(3 * 1024 * 1024, 0, "")
    local got = {}
    while true do
      local x = r:next()
      if not x then
        break
      end
      for _, e in ipairs(flat(loki.decode_push(x.body, true))) do
        got[#got + 1] = e[2]
      end
    end
    table.sort(got)
    assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20 }, got)
    r:close()
    q:close()
  end)

  it("cuts requests at batch_size bytes and at max_streams, inside a record too", function()
    local q = assert(loki.open_queue(tmp .. "/q2"))
    local list = {}
    for i = 1, 10 do
      list[i] = { { n = tostring(i % 4) }, 1700000000 + i, 0, string.rep("x", 100) }
    end
    assert(q:append(batch(list), 1))
    local r = assert(q:reader("ep"))
    r:configure(250, 0, "")
    local sizes = {}
    local got = {}
    while true do
      local x = r:next()
      if not x then
        break
      end
      sizes[#sizes + 1] = x.entries
      for _, e in ipairs(flat(loki.decode_push(x.body, true))) do
        got[#got + 1] = e[2]
      end
    end
    assert.same({ 2, 2, 2, 2, 2 }, sizes)
    table.sort(got)
    for i = 1, 10 do
      assert.equal(1700000000 + i, got[i])
    end
    r:rewind()
    r:configure(1e9, 2, "")
    sizes = {}
    while true do
      local x = r:next()
      if not x then
        break
      end
      sizes[#sizes + 1] = x.entries .. "/" .. x.streams
    end
    -- streams 1,2 then 3,0 then 1,2 ... : a request ends where a third stream would begin
    assert.same({ "2/2", "2/2", "2/2", "2/2", "2/2" }, sizes)
    r:close()
    q:close()
  end)

  it("reads the entries of alternating tenants as one request per tenant, not one per entry", function()
    local q = assert(loki.open_queue(tmp .. "/q6"))
    local list = {}
    for i = 1, 20 do
      list[i] = { { job = "a", __tenant_id__ = "t" .. (i % 3) }, i, 0, "line" .. i }
    end
    list[21] = { { job = "plain" }, 21, 0, "no tenant" }
    assert(q:append(batch(list), 1))
    local r = assert(q:reader("ep"))
    r:configure(1024 * 1024, 0, "")
    local req = assert(r:next())
    assert.equal(21, req.entries)
    assert.is_false(req.full)
    local got = {}
    for _, p in ipairs(req.parts) do
      local secs = {}
      for _, e in ipairs(flat(loki.decode_push(p.body, true))) do
        assert.equal(p.tenant and '{job="a"}' or '{job="plain"}', e[1])
        secs[#secs + 1] = e[2]
      end
      assert.equal(#secs, p.entries)
      got[p.tenant or ""] = secs
    end
    assert.same({ t1 = { 1, 4, 7, 10, 13, 16, 19 }, t2 = { 2, 5, 8, 11, 14, 17, 20 }, t0 = { 3, 6, 9, 12, 15, 18 },
      [""] = { 21 } }, got)
    assert.is_false(r:next())
    r:close()
    -- more tenants than a read takes (8): the read ends before the 9th, which comes next (a new
    -- reader reads both batches)
    list = {}
    for i = 1, 10 do
      list[i] = { { job = "a", __tenant_id__ = "u" .. i }, i, 0, "x" }
    end
    assert(q:append(batch(list), 2))
    r = assert(q:reader("ep2"))
    r:configure(1024 * 1024, 0, "")
    local sizes = {}
    while true do
      local x = r:next()
      if not x then
        break
      end
      sizes[#sizes + 1] = #x.parts .. "/" .. tostring(x.full)
    end
    assert.same({ "8/true", "6/false" }, sizes) -- 4 tenants of the first batch, then 4 of these
    r:close()
    q:close()
  end)

  it("skips a segment whose file is gone (its entries are lost) and reads on, as a damaged one", function()
    local dir = tmp .. "/q5"
    local q = assert(loki.open_queue(dir, { segment_size = 1024 }))
    for i = 1, 3 do -- one segment each
      assert(q:append(batch({ { { job = "a" }, i, 0, string.rep(tostring(i), 700) } }), i))
    end
    assert.equal(3, tonumber(q:stats().segments))
    local files = {}
    for name in io.popen("ls " .. dir .. "/queue"):lines() do
      if name:match("^%d+$") then
        files[#files + 1] = name
      end
    end
    table.sort(files)
    assert(os.remove(dir .. "/queue/" .. files[2]))
    local r = assert(q:reader("ep"))
    r:configure(1024 * 1024, 0, "")
    local req, err = r:next()
    assert.is_nil(err)
    local got = {}
    for _, e in ipairs(flat(loki.decode_push(req.body, true))) do
      got[#got + 1] = e[2]
    end
    assert.same({ 1, 3 }, got)
    assert.equal(1, tonumber(q:stats().corruptions))
    r:close()
    q:close()
  end)

  it("parses stream label strings as Loki does", function()
    assert.same({ { "a", "1" }, { "b", 'x"\nA\xc3\xa9' } }, loki.parse_labels('{ b = "x\\"\\n\\x41\\u00e9", a=`1` }'))
    local _, err = loki.parse_labels('{a="\\xff"}')
    assert.matches("invalid UTF-8", err, 1, true)
    assert.same({ { "a", "2" }, { "a", "1" } }, loki.parse_labels('{a="2",a="1"}'))
    assert.same({}, loki.parse_labels("{}"))
    _, err = loki.parse_labels('{a="1"')
    assert.matches("parse error at line 1, col 7: syntax error: unexpected end of input", err, 1, true)
    _, err = loki.parse_labels('{1a="1"}')
    assert.matches("col 2", err, 1, true)
    _, err = loki.parse_labels('{a=~"1"}')
    assert.matches("equality", err, 1, true)
    _, err = loki.parse_labels('job="x"')
    assert.matches("expecting '{'", err, 1, true)
    assert.equal('{a="1", b="\\x00\\\\"}', loki.format_labels({ b = "\0\\", a = "1" }))
  end)

  it("refuses bodies that are not snappy or not a PushRequest", function()
    local s, err = loki.decode_push("not snappy at all", true)
    assert.is_nil(s)
    assert.matches("snappy", err)
    s, err = loki.decode_push("\255\255\255", false)
    assert.is_nil(s)
    assert.matches("proto", err)
  end)
end)
