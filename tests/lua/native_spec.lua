-- moonwatch.native: the Lua wrappers over the FFI return value or nil, err for
-- bad input (a clear message, no raise), raise only for misuse, and own what C
-- allocates (the sanitizer build checks that failed calls leak nothing).
local batches = require("helpers.batches")
local proc = require("helpers.proc")

local core = require("moonwatch.native.core")
local scrape = require("moonwatch.native.scrape")
local relabel = require("moonwatch.native.relabel")
local relabel_cache = require("moonwatch.native.relabel_cache")
local wal = require("moonwatch.native.wal")
local rwmeta = require("moonwatch.native.rwmeta")
local node = require("moonwatch.native.node")
local procgroup = require("moonwatch.native.procgroup")
local batch = require("moonwatch.batch")

local tmp = proc.tmpdir()

-- Calls fn and checks that it returned nil and an error containing want (plain text).
local function fails(want, ok, err)
  assert.is_nil(ok)
  assert.is_string(err)
  assert.truthy(err:find(want, 1, true), string.format("error %q does not contain %q", err, want))
end

local OPTS = { honor_timestamps = true, fallback_format = scrape.FORMAT_TEXT }

describe("moonwatch.native.core", function()
  it("hashes with SHA-256, whole or the first n hex digits", function()
    assert.equals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", core.sha256_hex("abc"))
    assert.equals("ba7816bf", core.sha256_hex("abc", 8))
  end)
end)

describe("moonwatch.native.scrape", function()
  it("refuses bad target labels with nil, err", function()
    fails('invalid target label name "bad-name"', scrape.target("bad-name\255x\255", OPTS))
    fails("malformed target labels", scrape.target("job\255", OPTS))
    fails("must be a string", scrape.target(nil, OPTS))
  end)

  it("raises for options that are not a table (misuse)", function()
    assert.has_error(function()
      scrape.target("", nil)
    end, "scrape target options must be a table")
  end)

  it("parses in steps and reports a bad body as nil, err naming the line", function()
    local t = assert(scrape.target("job\255j\255", OPTS))
    assert.is_true(t:parse_begin("a 1\nb 2\n", 8, "text/plain", 1000))
    assert.is_true(t:parse_step(0))
    assert.equals(2, batch.len(t:batch()))
    assert.equals(2, tonumber(t.stats.samples))
    t:clear()
    local body = "a 1\nb{ 2\n"
    assert.is_true(t:parse_begin(body, #body, "text/plain", 2000))
    local done, err = t:parse_step(0)
    assert.is_nil(done)
    assert.truthy(err:find("line 2", 1, true), err)
    assert.is_true(t:report(2000, 0, 0.1, 0, 0, 0))
    assert.equals(5, batch.len(t:report_batch()))
    assert.truthy(t:series() > 0)
  end)

  it("takes a body as a pointer and fails a parse on request", function()
    local ffi = require("ffi")
    local t = assert(scrape.target("", OPTS))
    local body = "a 1\n"
    local p = ffi.new("char[?]", #body + 1, body)
    assert.is_true(t:parse_begin(p, #body, nil, 1000))
    assert.equals("too slow", t:parse_fail("too slow"))
    local _ = p
  end)
end)

describe("moonwatch.native.relabel", function()
  local function rule(r)
    local out = { source_labels = {}, separator = ";", regex = "(.*)", modulus = 0, target_label = "",
      replacement = "$1", action = "replace" }
    for k, v in pairs(r) do
      out[k] = v
    end
    return out
  end

  it("checks regexes with nil, err", function()
    assert.is_true(relabel.check_regex("a.*"))
    fails("lookahead", relabel.check_regex("(?=x)"))
    fails("must be a string", relabel.check_regex(42))
  end)

  it("refuses bad rules with nil, err naming the rule and field", function()
    fails("rule 1: must be a table", relabel.compile({ "keep" }))
    fails("rule 2: regex must be a string", relabel.compile({ rule({}), rule({ regex = 1 }) }))
    fails("rule 1: source_labels[1] must be a string", relabel.compile({ rule({ source_labels = { 1 } }) }))
    fails("rule 1", relabel.compile({ rule({ action = "nosuch" }) }))
    fails("rule 1", relabel.compile({ rule({ action = "hashmod", target_label = "x" }) }))
  end)

  it("compiles and applies a program to a label table", function()
    local p = assert(relabel.compile({ rule({ source_labels = { "a" }, target_label = "b" }) }))
    assert.same({ a = "1", b = "1" }, relabel.apply(p, { a = "1" }))
    local drop = assert(relabel.compile({ rule({ source_labels = { "a" }, regex = "1", action = "drop" }) }))
    assert.is_nil(relabel.apply(drop, { a = "1" }))
  end)
end)

describe("moonwatch.native.relabel_cache", function()
  it("refuses a bad size with nil, err", function()
    fails("relabel cache size", relabel_cache.new(-1))
    fails("relabel cache size", relabel_cache.new("big"))
  end)

  it("leaves misses to the caller and refuses an invalid output with nil, err", function()
    local cache = assert(relabel_cache.new(10))
    assert.is_true(cache:reset(nil))
    local b, keep = batches.from_text("a 1\nb 2\n")
    local st = assert(cache:apply(b))
    assert.equals(2, tonumber(st.misses))
    assert.equals(2, cache:misses())
    fails("malformed label set", cache:put(cache:miss(0), "a\255"))
    fails("no sample 7 in the last input batch", cache:put(7, "a\255x\255"))
    assert.is_true(cache:put(cache:miss(1), "b\255y\255"))
    assert.has_error(function()
      cache:miss(2)
    end, "miss index out of range")
    assert.truthy(keep)
  end)
end)

describe("moonwatch.native.wal", function()
  it("refuses a bad directory or fsync policy with nil, err", function()
    fails("non-empty string", wal.open(""))
    fails("fsync must be never, interval or always", wal.open(tmp .. "/w0", { fsync = "sometimes" }))
    fails("", wal.open("/proc/self/nonexistent/wal"))
  end)

  it("appends, reads spans and refuses bad reader input with nil, err", function()
    local w = assert(wal.open(tmp .. "/w1"))
    assert.equals("", w:repair_log())
    local b, keep = batches.from_text("a 1\nb 2\n", 1000)
    assert.is_true(w:append(b))
    assert.equals(2, tonumber(w:stats().samples_appended))
    fails("", w:reader("bad name!"))
    local r = assert(w:reader("ep", ""))
    assert.equals("", r:note())
    fails("shards must be in [1, 1024]", r:next_shards(0, 100, -1))
    assert.is_true(r:next_shards(2, 100, -1))
    local seq, got = r:span_seq(), 0
    for k = 0, 1 do
      local body, samples = r:shard(k)
      if body then
        assert.truthy(#body > 0)
        got = got + samples
      end
    end
    assert.equals(2, got)
    assert.is_true(r:commit(seq))
    assert.is_false(r:next_shards(2, 100, -1))
    local d, derr = r:drop_old(seq, "not a request", 2000)
    assert.is_nil(d)
    assert.is_string(derr)
    r:close()
    assert.has_error(function()
      r:stats()
    end, "the WAL reader is closed")
    w:close()
    assert.has_error(function()
      w:stats()
    end, "the WAL is closed")
    assert.truthy(keep)
  end)
end)

describe("moonwatch.native.rwmeta", function()
  it("refuses bad entries with nil, err and encodes a set", function()
    local set = assert(rwmeta.new())
    fails("unknown metric type", set:add("nosuch", "a"))
    fails("", set:add(99, "a"))
    fails("must be a string", set:add("counter", nil))
    assert.is_true(set:add("counter", "a_total", "Help.", ""))
    assert.equals(1, set:len())
    local t, name, help = set:get(0)
    assert.same({ 1, "a_total", "Help." }, { t, name, help })
    fails("out of range", set:get(1))
    assert.truthy(#assert(set:encode(0, 1)) > 0)
  end)
end)

describe("moonwatch.native.node", function()
  it("refuses an unknown collector or option with nil, err", function()
    fails("nosuch", node.new({ collectors = "nosuch" }))
    fails("unknown node exporter option bogus", node.new({ collectors = "loadavg", bogus = "x" }))
    fails("fs_mount_timeout must be a number", node.new({ collectors = "loadavg", fs_mount_timeout = "5s" }))
  end)

  it("collects a set", function()
    local set = assert(node.new({ collectors = "loadavg" }))
    local body, ctype, gzipped, errors = set:collect(nil, nil)
    assert.truthy(body:find("node_load1", 1, true))
    assert.truthy(ctype:find("text/plain", 1, true))
    assert.is_false(gzipped)
    assert.equals("", errors)
    assert.truthy(#node.collectors() > 10)
    assert.truthy(node.default("fs_types_exclude") ~= "")
  end)
end)

describe("moonwatch.native.procgroup", function()
  it("refuses a bad template or matcher with nil, err", function()
    fails("", procgroup.check_template("{{.Nope"))
    fails("must be a string", procgroup.check_template(nil))
    fails("matcher 1: comm[1] must be a string", procgroup.new({}, { { comm = { 1 } } }))
    fails("matcher 1", procgroup.new({}, { { cmdline = { "(" } } }))
  end)

  it("collects a tracker", function()
    local t = assert(procgroup.new({}, { { comm = { "nosuchprocess" } } }))
    local body = assert(t:collect(nil, nil))
    assert.truthy(body:find("namedprocess_scrape", 1, true))
  end)
end)
