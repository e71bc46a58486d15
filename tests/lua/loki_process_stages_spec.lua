-- loki.process's stages, in process (no `moonwatch run`): a loki.process built as the
-- controller builds it (schema-validated stages), fed one batch, its output read back. For
-- the cases where moonwatch's stages must read a value as Alloy's do.
local SRC = os.getenv("MOONWATCH_SOURCE_DIR") or "."
package.path = SRC .. "/stdlib/?.lua;" .. SRC .. "/stdlib/?/init.lua;" .. package.path
local schema = require("moonwatch.schema")
local logs = require("moonwatch.batch.logs")
local ffi_rt = require("moonwatch.ffi")
local gotime = require("loki.process.gotime")
local logfmt = require("loki.process.logfmt")
local jmespath = require("loki.process.jmespath")

local stage = setmetatable({}, { __index = function(_, tag)
  return function(a)
    return schema.tagged("stage", tag, a, 1)
  end
end })

-- Runs entries ({ labels, line, sec, nsec }) through the stages; the entries forwarded, or
-- nil and the first problem of the configuration.
local function run(stages, entries, now)
  local P = require("loki.process")
  local out = {}
  local sink = require("moonwatch.receiver").logs("sink", function(_, lb)
    for _, e in logs.entries(lb) do
      out[#out + 1] = e
    end
  end)
  local args_in = { forward_to = { sink } }
  for i, s in ipairs(stages) do
    args_in[i] = s
  end
  local args, problems = schema.validate({ args = P.args, positional = "stage" }, args_in)
  if #problems > 0 then
    return nil, problems[1].msg
  end
  local saved = ffi_rt.time_now
  if now then
    ffi_rt.time_now = function()
      return now
    end
  end
  local ctx = { id = "loki.process.test", log = require("moonwatch.log").new({}), export = function() end,
    on_stop = function() end, timer = function()
      return { close = function() end }
    end }
  local ok, err = pcall(function()
    local p = P.new(ctx, args)
    local b = logs.new()
    for _, e in ipairs(entries) do
      logs.add(b, e.labels or { job = "a" }, e.sec or 1700000000, e.nsec or 0, e.line)
    end
    p:append(b)
  end)
  ffi_rt.time_now = saved
  if not ok then
    error(err, 0)
  end
  return out
end

local function utc(y, mo, d, h, mi, s)
  return gotime.days_from_civil(y, mo, d) * 86400 + (h or 0) * 3600 + (mi or 0) * 60 + (s or 0)
end

describe("loki.process stages", function()
  it("stage.timestamp gives a layout without a year the year of now, the last one for December in January", function()
    -- Alloy's SetYearForLimitedTimeFormat: a December timestamp read in January is last year's,
    -- a January one read in December next year's
    local jan1 = utc(2027, 1, 1, 0, 0, 5)
    local out = assert(run({ stage.regex { expression = "^(?P<ts>\\w+ +\\d+ [\\d:]+)" },
      stage.timestamp { source = "ts", format = "Jan _2 15:04:05" } },
      { { line = "Dec 31 23:59:58 host app: bye" }, { line = "Jan  1 00:00:04 host app: hi" } }, jan1))
    assert.equals(utc(2026, 12, 31, 23, 59, 58), out[1].sec)
    assert.equals(utc(2027, 1, 1, 0, 0, 4), out[2].sec)
    local dec31 = utc(2026, 12, 31, 23, 59, 59)
    out = assert(run({ stage.regex { expression = "^(?P<ts>\\w+ +\\d+ [\\d:]+)" },
      stage.timestamp { source = "ts", format = "Jan _2 15:04:05" } },
      { { line = "Jan  1 00:00:01 host app: early clock" }, { line = "Jun  1 00:00:01 host app: mid" } }, dec31))
    assert.equals(utc(2027, 1, 1, 0, 0, 1), out[1].sec)
    assert.equals(utc(2026, 6, 1, 0, 0, 1), out[2].sec)
  end)

  it("gotime reads Feb 29 without a year (Go's year 0 is a leap year) as Mar 1 of a common year", function()
    local c = gotime.compile("Jan _2 15:04:05")
    assert.equals(utc(2027, 3, 1, 10, 0, 0), (gotime.parse(c, "Feb 29 10:00:00", nil, 2027, 6)))
    assert.equals(utc(2028, 2, 29, 10, 0, 0), (gotime.parse(c, "Feb 29 10:00:00", nil, 2028, 6)))
  end)
end)

describe("loki.process stages (json, logfmt)", function()
  it("stage.json takes an index past any array (a[99999999999999999999]) as missing, not a failed pipeline", function()
    local ok, out = pcall(run, { stage.json { expressions = { x = "a[99999999999999999999]", y = "b" } },
      stage.labels { values = { x = "", y = "" } } }, { { line = '{"a":[1,2],"b":"here"}' } })
    assert.is_true(ok, tostring(out))
    assert.same({ job = "a", y = "here" }, out[1].labels)
  end)

  it("stage.json drops a JSON array line with drop_malformed (Alloy reads an object), by any path", function()
    -- a negative index takes the decoder's path, a plain name the scanner's: both drop
    for _, expr in ipairs({ "[-1]", "a" }) do
      local out = assert(run({ stage.json { expressions = { x = expr }, drop_malformed = true } },
        { { line = '[{"a":1}]' }, { line = '{"a":[1]}' } }))
      assert.equals(1, #out, expr)
      assert.equals('{"a":[1]}', out[1].line)
    end
  end)

  it("decodes a \\u surrogate pair in a logfmt value and a JMESPath quoted name as one UTF-8 character", function()
    local got = {}
    logfmt.each('msg="\\ud83d\\ude00 \\u00e9" lone="\\ud83d"', function(k, v)
      got[k] = v
    end)
    assert.equals("\240\159\152\128 \195\169", got.msg)
    assert.equals("\239\191\189", got.lone) -- U+FFFD, as Go's decoder
    assert.same({ "\240\159\152\128" }, jmespath.compile('"\\ud83d\\ude00"'))
  end)
end)

describe("loki.process stages (labels)", function()
  it("stage.static_labels skips an empty value (Alloy's keeps the label the entry has) and invalid UTF-8", function()
    local out = assert(run({ stage.static_labels { values = { env = "", team = "\255bad", region = "eu" } } },
      { { labels = { job = "a", env = "prod", team = "x" }, line = "l" } }))
    assert.same({ job = "a", env = "prod", team = "x", region = "eu" }, out[1].labels)
  end)
end)

describe("loki.process stages (invalid UTF-8 reaching labels and metadata)", function()
  -- a label value or metadata value that is not UTF-8 is skipped, as Alloy's label stages
  -- skip it; before, its 0xff byte failed the whole batch ("malformed label pairs")
  it("stage.tenant, stage.structured_metadata and stage.docker skip a value that is not UTF-8", function()
    local out = assert(run({ stage.regex { expression = "^(?P<t>\\S+) (?P<m>\\S+)" },
      stage.tenant { source = "t" }, stage.structured_metadata { values = { m = "" } } },
      { { line = "te\255nant me\255ta" }, { line = "good ok" } }))
    assert.equals(2, #out)
    assert.same({ job = "a" }, out[1].labels)
    assert.same({}, out[1].metadata)
    assert.same({ job = "a", __tenant_id__ = "good" }, out[2].labels)
    assert.same({ m = "ok" }, out[2].metadata)
    out = assert(run({ stage.docker {} }, { { line = '{"log":"x\\n","stream":"std\255out","time":"2023-11-14T22:13:20Z"}' } }))
    assert.equals(1, #out)
    assert.equals("x\n", out[1].line)
    assert.same({ job = "a" }, out[1].labels)
  end)

  it("stage.lua: a function that leaves a label or metadata value that is not UTF-8 leaves the entry as it was", function()
    local out = assert(run({ stage.lua { fn = function(e)
      if e.line == "l" then
        e.labels.x = "\255"
      else
        e.metadata.y = "\255"
      end
      e.line = "changed"
    end } }, { { line = "l" }, { line = "m" } }))
    assert.equals(2, #out)
    assert.same({ "l", "m" }, { out[1].line, out[2].line })
    assert.same({ job = "a" }, out[1].labels)
    assert.same({}, out[2].metadata)
  end)
end)

describe("loki.process stages (timestamp layouts)", function()
  it("reads a zone abbreviation with the location's offset for it, as Go's ParseInLocation", function()
    local ny = assert(gotime.zone("America/New_York"))
    local c = gotime.compile("2006-01-02 15:04:05 MST")
    assert.equals(utc(2023, 1, 1, 17), (gotime.parse(c, "2023-01-01 12:00:00 EST", ny)))
    assert.equals(utc(2023, 7, 1, 16), (gotime.parse(c, "2023-07-01 12:00:00 EDT", ny)))
    -- EST in summer: no EST type in effect then, any type of that name (Go's second try)
    assert.equals(utc(2023, 7, 1, 17), (gotime.parse(c, "2023-07-01 12:00:00 EST", ny)))
    -- a name the location does not use, UTC, and no location: offset 0
    assert.equals(utc(2023, 1, 1, 12), (gotime.parse(c, "2023-01-01 12:00:00 CET", ny)))
    assert.equals(utc(2023, 1, 1, 12), (gotime.parse(c, "2023-01-01 12:00:00 UTC", ny)))
    assert.equals(utc(2023, 1, 1, 12), (gotime.parse(c, "2023-01-01 12:00:00 EST")))
    -- Go's parseTimeZone: 3 letters, or 4 or 5 ending in T
    assert.is_nil((gotime.parse(c, "2023-01-01 12:00:00 AB")))
    assert.is_nil((gotime.parse(c, "2023-01-01 12:00:00 ABCD")))
    assert.equals(utc(2023, 1, 1, 12), (gotime.parse(c, "2023-01-01 12:00:00 AEST")))
  end)

  it("reads Unix numbers as Go's strconv.ParseInt: a leading +, not a dot without digits", function()
    assert.same({ 5, 0 }, { gotime.parse(gotime.compile("Unix"), "+5") })
    assert.same({ 1700000000, 123000000 }, { gotime.parse(gotime.compile("UnixMs"), "+1700000000123") })
    assert.is_nil((gotime.parse(gotime.compile("Unix"), "1700000000.")))
    assert.same({ 1700000000, 500000000 }, { gotime.parse(gotime.compile("Unix"), "1700000000.5") })
  end)
end)

describe("loki.process stages (replace)", function()
  it("stage.replace extracts a named group as its replaced value (Alloy's capturedMap)", function()
    local out = assert(run({ stage.replace { expression = "(?P<user>frank)", replace = "{{ .Value | ToUpper }}" },
      stage.labels { values = { user = "" } } }, { { line = "11.11.11.11 - frank [01/Jan/2023]" } }))
    assert.equals("11.11.11.11 - FRANK [01/Jan/2023]", out[1].line)
    assert.same({ job = "a", user = "FRANK" }, out[1].labels)
  end)

  it("stage.replace leaves the entry as it was when its template fails (not the group removed)", function()
    local out = assert(run({ stage.replace { expression = "password (\\S+)", replace = "{{ ToUpper .nope }}" } },
      { { line = "user=a password xyz" } }))
    assert.equals("user=a password xyz", out[1].line)
  end)

  it("stage.replace takes Go's matches: no empty match right after a match", function()
    local out = assert(run({ stage.replace { expression = "(a*)", replace = "X" } }, { { line = "bab" } }))
    assert.equals("XbXbX", out[1].line)
  end)

  it("stage.replace gives its template the extracted values as strings", function()
    local out = assert(run({ stage.json { expressions = { ok = "" } },
      stage.replace { expression = "(v)", replace = "{{ ToUpper .ok }}" } }, { { line = '{"ok":true,"k":"v"}' } }))
    assert.equals('{"ok":true,"k":"TRUE"}', out[1].line)
  end)

  it("stage.replace gives each entry's template that entry's extracted values", function()
    local out = assert(run({ stage.json { expressions = { u = "" } },
      stage.replace { expression = "(x)", replace = "{{ .u }}" } },
      { { line = '{"u":"ann","k":"x"}' }, { line = '{"k":"y"}' }, { line = '{"u":2,"k":"x"}' } }))
    assert.same({ '{"u":"ann","k":"ann"}', '{"k":"y"}', '{"u":2,"k":"2"}' }, { out[1].line, out[2].line, out[3].line })
  end)
end)

describe("loki.process stages (layout spaces)", function()
  it("a space in a layout matches a run of spaces in the value, as Go's time.Parse", function()
    local c = gotime.compile("Jan 2 15:04:05 2006")
    assert.equals(utc(2023, 12, 7, 10), (gotime.parse(c, "Dec  7 10:00:00 2023")))
    assert.equals(utc(2023, 12, 7, 10), (gotime.parse(c, "Dec 7   10:00:00 2023")))
    assert.is_nil((gotime.parse(c, "Dec 7 10:00:00x2023")))
    assert.is_nil((gotime.parse(c, "Dec7 10:00:00 2023")))
  end)
end)

describe("loki.process stages (json strictness, template trims)", function()
  it("stage.json's decoder path refuses what JSON does not allow (hex, NaN, Infinity), as its scanner", function()
    for _, bad in ipairs({ '{"a":0x10}', '{"a":NaN}', '{"a":Infinity}', '{"a":-inf}' }) do
      for _, expr in ipairs({ "[-1]", "a" }) do
        local out = assert(run({ stage.json { expressions = { x = expr }, drop_malformed = true } }, { { line = bad } }))
        assert.equals(0, #out, bad .. " with " .. expr)
      end
    end
  end)

  it("stage.template's Trim functions take the cutset as characters (Go's), not bytes", function()
    local out = assert(run({ stage.regex { expression = "^(?P<v>.*)$" },
      stage.template { source = "v", template = '{{ Trim .Value "é" }}|{{ TrimLeft .Value "éë" }}' },
      stage.output { source = "v" } }, { { line = "ëaé" } }))
    assert.equals("ëa|aé", out[1].line)
  end)
end)

describe("loki.process stages (zoneinfo rules)", function()
  -- a "slim" TZif file: no transitions, the rule in its footer (as zic -b slim writes them)
  local function be32(n)
    n = n % 2 ^ 32
    return string.char(math.floor(n / 2 ^ 24) % 256, math.floor(n / 2 ^ 16) % 256, math.floor(n / 2 ^ 8) % 256, n % 256)
  end
  local function slim(name, off, footer)
    local counts = be32(0) .. be32(0) .. be32(0) .. be32(0) .. be32(1) .. be32(#name + 1)
    local block = be32(off) .. "\0\0" .. name .. "\0"
    local head = "TZif2" .. string.rep("\0", 15) .. counts
    return head .. block .. head .. block .. "\n" .. footer .. "\n"
  end

  it("uses the footer's rule of a zoneinfo file past its last transition (slim files: all of today)", function()
    local ny = assert(gotime.tzif(slim("EST", -18000, "EST5EDT,M3.2.0,M11.1.0")))
    local c = gotime.compile("2006-01-02 15:04:05")
    assert.equals(utc(2023, 7, 1, 16), (gotime.parse(c, "2023-07-01 12:00:00", ny)))
    assert.equals(utc(2023, 1, 1, 17), (gotime.parse(c, "2023-01-01 12:00:00", ny)))
    assert.equals(-14400, ny:offset_at(utc(2023, 3, 12, 7)))
    assert.equals(-18000, ny:offset_at(utc(2023, 3, 12, 7) - 1))
    assert.equals(-18000, ny:offset_at(utc(2023, 11, 5, 6)))
    assert.equals(-14400, ny:offset_at(utc(2023, 11, 5, 6) - 1))
    -- the rule gives what the full files' transitions give, north and south
    for _, name in ipairs({ "America/New_York", "Europe/Paris", "Australia/Sydney", "America/Sao_Paulo" }) do
      local fat = assert(gotime.zone(name))
      local f = assert(io.open("/usr/share/zoneinfo/" .. name, "rb"))
      local footer = f:read("*a"):match("\n([^\n]*)\n$")
      f:close()
      local rule = assert(gotime.tzif(slim("XXX", 0, footer)), name)
      for t = utc(2024, 1, 1), utc(2030, 1, 1), 1800 do
        if fat:offset_at(t) ~= rule:offset_at(t) then
          error(string.format("%s at %d: %d from the transitions, %d from the rule %q", name, t, fat:offset_at(t),
            rule:offset_at(t), footer))
        end
      end
    end
  end)
end)

describe("loki.process stages (pack)", function()
  it("stage.pack packs extracted values and the line into JSON as Alloy's, labels packed removed", function()
    local now = 1800000000.25
    local out = assert(run({ stage.regex { expression = "user=(?P<user_id>\\S+)" },
      stage.pack { labels = { "env", "user_id", "absent" } } },
      { { labels = { job = "a", env = "prod" }, line = 'user=u1 said "<hi>" & left\n' } }, now))
    assert.equals('{"env":"prod","user_id":"u1","_entry":"user=u1 said \\"\\u003chi\\u003e\\" \\u0026 left\\n"}',
      out[1].line)
    assert.same({ job = "a" }, out[1].labels)
    assert.same({ 1800000000, 250000000 }, { out[1].sec, out[1].nsec })
    out = assert(run({ stage.pack { labels = {}, ingest_timestamp = false } }, { { line = "\255x" } }))
    assert.equals('{"_entry":"\\ufffdx"}', out[1].line)
    assert.equals(1700000000, out[1].sec)
  end)
end)

describe("loki.process stages (nested JSON text)", function()
  it("stage.json writes a nested value's JSON as Go's encoder: exponents for tiny and huge numbers, HTML escaped", function()
    local line = '{"o":{"a":1e-7,"b":2e21,"c":"<x>&","d":0.5,"e":-1.25e-10,"f":123456789012}}'
    for _, extra in ipairs({ "o", "[-1]" }) do -- the scanner's path, the decoder's path
      local out = assert(run({ stage.json { expressions = { o = "", z = extra } }, stage.output { source = "o" } },
        { { line = line } }))
      assert.equals('{"a":1e-7,"b":2e+21,"c":"\\u003cx\\u003e\\u0026","d":0.5,"e":-1.25e-10,"f":123456789012}',
        out[1].line)
    end
  end)
end)

describe("loki.process stages (metrics arguments)", function()
  local metric = setmetatable({}, { __index = function(_, tag)
    return function(a)
      return schema.tagged("metric", tag, a, 1)
    end
  end })
  it("refuses count_entry_bytes without match_all and action add, as Alloy's (it would count no bytes)", function()
    for _, a in ipairs({ { match_all = true, action = "inc" }, { action = "add", source = "n" } }) do
      a.name, a.count_entry_bytes = "bytes_total", true
      local out, err = run({ stage.metrics { metric.counter(a) } }, { { line = "x" } })
      assert.is_nil(out)
      assert.matches("count_entry_bytes needs match_all = true and action = \"add\"", err, 1, true)
    end
    assert(run({ stage.metrics { metric.counter { name = "bytes_total", match_all = true, action = "add",
      count_entry_bytes = true } } }, { { line = "x" } }))
  end)
end)

describe("loki.process stages (cri)", function()
  it("joins a long run of CRI partial lines in linear time (a 32 MiB line in 16 KiB parts)", function()
    local chunk = string.rep("x", 16384)
    local entries = {}
    for i = 1, 2000 do
      entries[i] = { line = "2023-11-14T22:13:20.000000000Z stdout P " .. chunk, nsec = i }
    end
    entries[#entries + 1] = { line = "2023-11-14T22:13:20.5Z stdout F end" }
    local t0 = os.clock()
    local out = assert(run({ stage.cri {} }, entries))
    local took = os.clock() - t0
    assert.equals(1, #out)
    assert.equals(2000 * 16384 + 3, #out[1].line)
    assert.equals("xxxend", out[1].line:sub(-6))
    assert.is_true(took < 3, string.format("took %.1f s", took))
  end)

  it("truncates joined partial lines at max_partial_line_size and sends them on past max_partial_lines", function()
    local out = assert(run({ stage.cri { max_partial_line_size = 10, max_partial_line_size_truncate = true,
      max_partial_lines = 1 } }, {
      { line = "2023-11-14T22:13:20Z stdout P abcdef" }, { line = "2023-11-14T22:13:21Z stdout P ghijkl" },
      { line = "2023-11-14T22:13:22Z stdout F mn" },
      { line = "2023-11-14T22:13:23Z stdout P one " }, { line = "2023-11-14T22:13:24Z stderr P two" },
      { line = "2023-11-14T22:13:25Z stderr F !" } }))
    local lines = {}
    for i, e in ipairs(out) do
      lines[i] = e.line
    end
    assert.same({ "abcdefghij", "one ", "two!" }, lines)
  end)
end)

describe("loki.process stages (template case)", function()
  it("ToUpper and ToLower change accented, Greek and Cyrillic letters as Go's strings functions", function()
    local out = assert(run({ stage.regex { expression = "^(?P<v>.*)$" },
      stage.template { source = "u", template = "{{ ToUpper .v }}|{{ ToLower .v }}" }, stage.output { source = "u" } },
      { { line = "Ärger état Œuvre ÿ ß Ωμέγα Привет 😀 x" } }))
    assert.equals("ÄRGER ÉTAT ŒUVRE Ÿ ß ΩΜΈΓΑ ПРИВЕТ 😀 X|ärger état œuvre ÿ ß ωμέγα привет 😀 x", out[1].line)
  end)
end)

describe("loki.process stages (match with stages that hold or merge entries)", function()
  it("stage.match with a nested multiline forwards the merged block, not the lines it merged", function()
    local out = assert(run({ stage.match { selector = '{job="a"}', stage.multiline { firstline = "^start" } } },
      { { line = "start 1" }, { line = "cont 1" }, { line = "start 2" }, { line = "cont 2" },
        { labels = { job = "b" }, line = "other" } }))
    local lines = {}
    for i, e in ipairs(out) do
      lines[i] = e.line
    end
    table.sort(lines)
    -- "start 2" and "cont 2" wait for more lines (max_wait_time)
    assert.same({ "other", "start 1\ncont 1" }, lines)
  end)

  it("stage.match with a nested cri forwards the joined line once", function()
    local out = assert(run({ stage.match { selector = '{job="a"}', stage.cri {} } },
      { { line = "2023-11-14T22:13:20Z stdout P part " }, { line = "2023-11-14T22:13:21Z stdout F end" } }))
    assert.equals(1, #out)
    assert.equals("part end", out[1].line)
  end)
end)

describe("loki.process stages (memory)", function()
  it("keeps no per-batch state: memory after many batches stays flat", function()
    local P = require("loki.process")
    local sink = require("moonwatch.receiver").logs("sink", function() end)
    local args = assert(schema.validate({ args = P.args, positional = "stage" }, { forward_to = { sink },
      stage.json { expressions = { level = "" } }, stage.labels { values = { level = "" } },
      stage.timestamp { source = "ts", format = "RFC3339" }, stage.static_labels { values = { env = "prod" } },
      stage.match { selector = '{level="info"}', stage.template { source = "x", template = "{{ .level }}" } },
      stage.structured_metadata { values = { x = "" } }, stage.label_drop { values = { "pod" } },
      stage.tenant { source = "x" } }))
    local ctx = { id = "loki.process.mem", log = require("moonwatch.log").new({}), export = function() end,
      on_stop = function() end, timer = function()
        return { close = function() end }
      end }
    local p = P.new(ctx, args)
    local function batches(n)
      for _ = 1, n do
        local b = logs.new()
        for s = 1, 5 do
          logs.add(b, { job = "a", instance = "host-" .. s, pod = "pod-" .. s }, 1700000000, 0, '{"level":"info"}')
        end
        p:append(b)
      end
      collectgarbage()
      collectgarbage()
      return collectgarbage("count")
    end
    -- a leak of one small table per stream and batch is ~25 MiB here; what a collection
    -- leaves varies by a few MiB
    local base = batches(1000)
    local after = batches(10000)
    assert.is_true(after - base < 4096, string.format("grew %.0f KiB over 10000 batches", after - base))
  end)
end)

describe("loki.process stages (arguments and stages of Alloy's documentation)", function()
  it("stage.structured_metadata moves labels it names or its regex matches to the metadata", function()
    local out = assert(run({ stage.regex { expression = "^(?P<pod_name>\\S+) (?P<user>\\S+)" },
      stage.structured_metadata { values = { env = "", u = "user" }, regex = "pod_.*" } },
      { { labels = { job = "a", env = "prod", pod_ns = "ns1" }, line = "p1 bob" } }))
    assert.same({ job = "a" }, out[1].labels) -- env and pod_ns are no labels any more (Alloy's doc)
    assert.same({ env = "prod", u = "bob", pod_name = "p1", pod_ns = "ns1" }, out[1].metadata)
    local _, err = run({ stage.structured_metadata { regex = "(" } }, {})
    assert.matches('invalid regex "("', err, 1, true)
  end)

  it("stage.labels reads structured metadata with source_type, stage.structured_metadata_drop removes it", function()
    local out = assert(run({ stage.regex { expression = "^(?P<env>\\S+) (?P<username>\\S+)" },
      stage.structured_metadata { values = { env = "", username = "" } },
      stage.labels { source_type = "structured_metadata", values = { env = "", user = "username" } },
      stage.structured_metadata_drop { values = { "env", "username" } } },
      { { line = "prod bob rest" } }))
    assert.same({ job = "a", env = "prod", user = "bob" }, out[1].labels)
    assert.same({}, out[1].metadata)
    local _, err = run({ stage.labels { source_type = "metadata", values = { a = "" } } }, {})
    assert.matches('must be one of extracted, structured_metadata, got string "metadata"', err, 1, true)
    _, err = run({ stage.structured_metadata_drop {} }, {})
    assert.matches("structured_metadata_drop stage config cannot be empty", err, 1, true)
  end)

  it("stage.regex sets labels from its named groups with labels_from_groups", function()
    local out = assert(run({ stage.regex { expression = "^(?P<year>\\d+)-(?P<bad>.*)", labels_from_groups = true } },
      { { labels = { job = "a", year = "old" }, line = "2022-rest" } }))
    assert.same({ job = "a", year = "2022", bad = "rest" }, out[1].labels) -- year overridden
    out = assert(run({ stage.regex { expression = "^(?P<year>\\d+)" } }, { { line = "2022" } }))
    assert.same({ job = "a" }, out[1].labels) -- not without it
  end)

  it("stage.sampling keeps about rate of the entries and counts the others with its reason", function()
    local entries = {}
    for i = 1, 4000 do
      entries[i] = { line = "l" .. i }
    end
    assert.equals(4000, #assert(run({ stage.sampling { rate = 1 } }, entries)))
    assert.equals(0, #assert(run({ stage.sampling { rate = 0 } }, entries)))
    local kept = #assert(run({ stage.sampling { rate = 0.25, drop_counter_reason = "logs_sampling" } }, entries))
    assert.is_true(kept > 800 and kept < 1200, kept .. " kept")
    local body = require("moonwatch.metrics").default:expose()
    assert.matches('loki_process_dropped_lines_total{component_id="loki.process.test",reason="logs_sampling"} '
      .. (4000 - kept), body, 1, true)
    local _, err = run({ stage.sampling { rate = 1.5 } }, {})
    assert.matches("must be between 0 and 1, got 1.5", err, 1, true)
  end)
end)

describe("loki.process stages (truncate)", function()
  it("truncates the line, labels, metadata and extracted values past a rule's limit, suffix included", function()
    local out = assert(run({ stage.regex { expression = "^(?P<word>\\S+)" },
      stage.structured_metadata { values = { word = "" } },
      stage.truncate { rule = {
        { limit = "12B", suffix = "..." },
        { limit = "5B", suffix = "~", source_type = "label", sources = { "pod" } },
        { limit = "4B", source_type = "structured_metadata" },
        { limit = "3B", source_type = "extracted", sources = { "word" } },
      } },
      stage.labels { values = { word = "", truncated = "" } } },
      { { labels = { job = "a", pod = "pod-\195\169\195\169", team = "long-team-name" }, line = "abcdefghijklmnop rest" },
        { labels = { job = "a" }, line = "short" } }))
    assert.equals("abcdefghi...", out[1].line)
    -- pod's 5 bytes end inside é: cut before it (a label value stays UTF-8); team not a source
    assert.same({ job = "a", pod = "pod-~", team = "long-team-name", word = "abc",
      truncated = "extracted,label,line,structured_metadata" }, out[1].labels)
    assert.same({ word = "abcd" }, out[1].metadata)
    assert.same({ job = "a", word = "sho", truncated = "extracted,structured_metadata" }, out[2].labels)
    assert.same({ word = "shor" }, out[2].metadata)
    assert.matches('loki_process_truncated_fields_total{component_id="loki.process.test",field="line"} 1',
      require("moonwatch.metrics").default:expose(), 1, true)
  end)

  it("truncates every extracted value without sources, those read from the labels too (not the labels)", function()
    local out = assert(run({ stage.regex { expression = "^(?P<word>\\S+) (?P<n>\\d+)" },
      stage.truncate { rule = { { limit = "4B", suffix = "~", source_type = "extracted" } } },
      stage.labels { values = { word = "", n = "", t = "team", truncated = "" } } },
      { { labels = { job = "a", team = "long-team-name", word = "zzzzzz" }, line = "abcdefgh 12 rest" },
        { labels = { job = "a" }, line = "abc 7" } }))
    assert.same({ job = "a", team = "long-team-name", t = "lon~", word = "abc~", n = "12",
      truncated = "extracted" }, out[1].labels)
    assert.same({ job = "a", word = "abc", n = "7" }, out[2].labels)
  end)

  it("refuses what Alloy refuses in a truncate rule", function()
    for _, c in ipairs({
      { { limit = "0B" }, "limit must be greater than zero" },
      { { limit = "0.5B" }, "limit must be greater than zero" }, -- Go's units: a whole number of bytes, 0
      { { limit = "3.9B", suffix = "..." }, "suffix length cannot be greater than or equal to limit" },
      { { limit = "3B", suffix = "..." }, "suffix length cannot be greater than or equal to limit" },
      { { limit = "10B", sources = { "a" } }, "sources cannot be set when source_type is 'line'" },
      { { limit = "ten" }, 'limit: "ten" is not a size' },
      { { limit = "10B", source_type = "labels" }, 'must be one of line, label, structured_metadata, extracted' },
    }) do
      local _, err = run({ stage.truncate { rule = { c[1] } } }, {})
      assert.matches(c[2], err, 1, true)
    end
  end)
end)

describe("loki.process stages (split_json)", function()
  it("splits a top-level JSON array into one entry per element, its text unchanged", function()
    local out = assert(run({ stage.split_json {}, stage.json { expressions = { level = "" } },
      stage.labels { values = { level = "" } } },
      { { line = ' [{"level":"info","msg":"a, [b]"} , {"level":"error","s":"q\\"]"},[1, 2],"x",3 ]', sec = 5 },
        { line = "[]" }, { line = '{"a":[1]}' }, { line = "[1," }, { line = "plain" }, { line = "[1]\0[2]" } }))
    local lines = {}
    for i, e in ipairs(out) do
      lines[i] = e.line
    end
    assert.same({ '{"level":"info","msg":"a, [b]"}', '{"level":"error","s":"q\\"]"}', "[1, 2]", '"x"', "3",
      '{"a":[1]}', "[1,", "plain", "[1]\0[2]" }, lines) -- Go's JSON takes no NUL after a value
    assert.same({ job = "a", level = "info" }, out[1].labels)
    assert.same({ job = "a", level = "error" }, out[2].labels)
    assert.equals(5, out[3].sec)
  end)

  it("splits an extracted value with source, each entry with its own copy of the extracted values", function()
    local out = assert(run({ stage.json { expressions = { records = "", host = "" } },
      stage.split_json { source = "records" }, stage.json { expressions = { id = "" } },
      stage.labels { values = { id = "", host = "" } } },
      { { line = '{"host":"h1","records":[{"id":"1"},{"id":"2"}]}' }, { line = '{"host":"h2"}' } }))
    assert.equals(3, #out)
    assert.same({ job = "a", id = "1", host = "h1" }, out[1].labels)
    assert.same({ job = "a", id = "2", host = "h1" }, out[2].labels)
    assert.equals('{"id":"2"}', out[2].line)
    assert.same({ job = "a", host = "h2" }, out[3].labels)
    local _, err = run({ stage.split_json { source = "" } }, {})
    assert.matches("must not be empty", err, 1, true)
  end)

  it("splits elements with long whitespace runs in linear time (1 MiB of spaces in a string, and around it)", function()
    -- trimming each element with "(.-)[ \t\r\n]*$" backtracked over every whitespace run in it:
    -- this line did not finish in an hour
    local sp = string.rep(" ", 1048576)
    local line = '[ "' .. sp .. 'x" ,' .. sp .. '{"a":' .. sp .. '1}' .. sp .. ']'
    local out = assert(run({ stage.split_json {} }, { { line = line } }))
    assert.equals(2, #out)
    assert.equals('"' .. sp .. 'x"', out[1].line)
    assert.equals('{"a":' .. sp .. '1}', out[2].line)
  end)
end)

describe("loki.process stages (pattern)", function()
  it("extracts Loki pattern captures as Loki's matcher finds them", function()
    local out = assert(run({ stage.pattern { pattern = "<time> <stream> <flags> <content>" } },
      { { line = "2019-01-01T01:00:00.000000001Z stderr P i'm a log message!" } }))
    assert.equals(1, #out)
    local ex = assert(run({ stage.pattern { pattern = "<time> <stream> <flags> <content>" },
      stage.labels { values = { stream = "", flags = "", content = "" } } },
      { { line = "2019-01-01T01:00:00.000000001Z stderr P i'm a log message!" } }))[1].labels
    assert.same({ job = "a", stream = "stderr", flags = "P", content = "i'm a log message!" }, ex)
    -- a leading literal must start the line; <_> skips; a literal not found: the rest is the capture
    local function caps(pattern, line)
      local o = assert(run({ stage.pattern { pattern = pattern, labels_from_groups = true } },
        { { line = line, labels = { job = "a" } } }))[1].labels
      o.job = nil
      return o
    end
    assert.same({ ip = "1.2.3.4", path = "/x" }, caps("<ip> - <_> \"GET <path> ", '1.2.3.4 - u "GET /x HTTP/1.1"'))
    assert.same({}, caps("ip=<ip> ", "x ip=1 "))
    assert.same({ a = "1", b = "2" }, caps("<a>,<b>;", "1,2;3"))
    assert.same({ a = "1", b = "2;3" }, caps("<a>,<b>!", "1,2;3"))
    assert.same({ a = "1", b = "2" }, caps("<a>,<b>", "1,2"))
  end)

  it("reads an extracted value with source and refuses what Loki's parser refuses", function()
    local out = assert(run({ stage.json { expressions = { time = "timestamp" } },
      stage.pattern { pattern = "<year>-<month>-<day>T<_>", source = "time", labels_from_groups = true } },
      { { line = '{"timestamp":"2022-01-01T01:00:00.000000001Z"}' } }))
    assert.same({ job = "a", year = "2022", month = "01", day = "01" }, out[1].labels)
    for _, c in ipairs({ { "<a><b>", "found consecutive capture" }, { "no capture <_>", "at least one capture is required" },
      { "<a> <a>", "duplicate capture name (a)" } }) do
      local _, err = run({ stage.pattern { pattern = c[1] } }, {})
      assert.matches(c[2], err, 1, true)
    end
    local _, err = run({ stage.pattern { pattern = "<a>", source = "" } }, {})
    assert.matches("empty source", err, 1, true)
  end)
end)

describe("loki.process stages (template functions of Alloy's documentation)", function()
  local gotemplate = require("loki.process.gotemplate")
  local function exec(t, v)
    return gotemplate.execute(assert(gotemplate.compile(t)), { Value = v })
  end

  it("regexReplaceAll expands $1, ${1}, $name and $$ as Go's; regexReplaceAllLiteral does not", function()
    assert.equals("aaaa xa", exec('{{ regexReplaceAll "(a*)bc" .Value "${1}a" }}', "aaabc xbc"))
    assert.equals("timestamp=1 timestamp=2", exec('{{ regexReplaceAllLiteral "(ts=)" .Value "timestamp=" }}', "ts=1 ts=2"))
    assert.equals("$1-x", exec('{{ regexReplaceAllLiteral "a" .Value "$1-" }}', "ax"))
    assert.equals("-a-b-c-", exec('{{ regexReplaceAll "x*" .Value "-" }}', "abc"))
    assert.equals("", exec('{{ regexReplaceAll "(a)" .Value "$1a" }}', "a")) -- the group named 1a: none
    assert.equals("$ 1=b", exec('{{ regexReplaceAll "(?P<k>\\\\w)=(?P<v>\\\\d)" .Value "$$ $v=$k" }}', "b=1"))
    local v, err = exec('{{ regexReplaceAll "(" .Value "" }}', "x")
    assert.is_nil(v)
    assert.matches('invalid regex "("', err, 1, true)
  end)

  it("Hash is SHA3-256 and Sha2Hash SHA-256 of its two arguments joined, in hex", function()
    assert.equals("9633e05a9a7d387a883c3a40c17e6bf3898e6a3563260c1eeb9ee8827277645c", exec('{{ Hash .Value "salt" }}', "hello"))
    assert.equals("87daba3fe263b34c335a0ee3b28ffec4d159aad6542502eaf551dc7b9128c267",
      exec('{{ Sha2Hash .Value "salt" }}', "hello"))
  end)
end)

describe("loki.process stages (luhn)", function()
  local function luhn(args, line)
    return assert(run({ stage.luhn(args) }, { { line = line } }))[1].line
  end

  it("replaces the numbers that pass the Luhn check, as Alloy's examples show", function()
    local line = 'time=2012-11-01T22:08:41+00:00 app=loki level=WARN duration=125 message="credit card approved '
    assert.equals(line .. '**DELETED**" extra="user=example_name"',
      luhn({ replacement = "**DELETED**" }, line .. '4242424242424242" extra="user=example_name"'))
    assert.equals(line .. '**DELETED**" x',
      luhn({ replacement = "**DELETED**", delimiters = "-" }, line .. '4242-4242-4242-4242" x'))
    assert.equals(line .. '4242-4242-4242-4242" x', luhn({}, line .. '4242-4242-4242-4242" x')) -- no delimiters
    -- skip_regex leaves the UUID's digits alone, the card number is still replaced
    assert.equals('card **R** session="a3f1b2e4-c5d6-7e8f-4242-424242424242"',
      luhn({ replacement = "**R**", min_length = 12,
        skip_regex = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}" },
        'card 4242424242424242 session="a3f1b2e4-c5d6-7e8f-4242-424242424242"'))
    assert.equals('session="a3f1b2e4-c5d6-7e8f-4242-**R**"',
      luhn({ replacement = "**R**", min_length = 12 }, 'session="a3f1b2e4-c5d6-7e8f-4242-424242424242"'))
  end)

  it("keeps short numbers, failing ones and ones past int64 (Go's Atoi), and a trailing delimiter once", function()
    assert.equals("**REDACTED**", luhn({}, "4242424242424242"))
    assert.equals("4242424242424241", luhn({}, "4242424242424241"))
    assert.equals("424242424242", luhn({}, "424242424242")) -- 12 digits < min_length 13
    assert.equals("**REDACTED**", luhn({}, "00004242424242424242")) -- 20 digits, but its value fits
    assert.equals("42424242424242424242424", luhn({}, "42424242424242424242424"))
    assert.equals("**REDACTED**- x", luhn({ delimiters = "-" }, "4242-4242-4242-4242-- x"))
    assert.equals("a\239\191\189b", luhn({}, "a\255b")) -- Go's range: U+FFFD
    -- exactly min_length digits pass, one fewer does not; the text around goes out as it was
    assert.equals("café **REDACTED** ok 42", luhn({}, "café 4222222222222 ok 42"))
    assert.equals("café 4222222222222 ok 42", luhn({ min_length = 14 }, "café 4222222222222 ok 42"))
    assert.equals("é 42 \239\191\189", luhn({}, "é 42 \255")) -- an invalid byte after a number: U+FFFD
    -- exactly min_length digits (in a line otherwise left as it is) pass, one fewer does not
    assert.equals("card **REDACTED** ok", luhn({}, "card 4222222222222 ok"))
    assert.equals("card 4222222222222 ok", luhn({ min_length = 14 }, "card 4222222222222 ok"))
    assert.equals("4242 \239\191\189", luhn({}, "4242 \255")) -- few digits, an invalid byte: still U+FFFD
    local _, err = run({ stage.luhn { source = "" } }, {})
    assert.matches("empty source", err, 1, true)
  end)
end)

describe("loki.process stages (eventlogmessage)", function()
  it("reads the Key: value lines of a Windows event message into extracted values, as Alloy's", function()
    local msg = "An account was logged on.\r\nSubject:\r\nSecurity ID: S-1-0\r\nLogon Type:  3 \r\njob: x\r\n1st: y"
    local line = require("cjson").encode({ message = msg })
    local out = assert(run({ stage.json { expressions = { message = "" } }, stage.eventlogmessage {},
      stage.labels { values = { Subject = "", Security_ID = "", Logon_Type = "", job_extracted = "", _st = "" } } },
      { { line = line } }))
    assert.same({ job = "a", Security_ID = "S-1-0", Logon_Type = "3", job_extracted = "x", _st = "y" }, out[1].labels)
    out = assert(run({ stage.json { expressions = { message = "" } },
      stage.eventlogmessage { drop_invalid_labels = true, overwrite_existing = true },
      stage.labels { values = { Security_ID = "", job = "" } } }, { { line = line } }))
    assert.same({ job = "x" }, out[1].labels)
    local _, err = run({ stage.eventlogmessage { source = "a-b" } }, {})
    assert.matches("invalid label name: a-b", err, 1, true)
  end)

  it("trims values as Go's TrimSpace (Unicode spaces), in linear time (a value with 1 MiB of spaces within)", function()
    local sp = string.rep(" ", 1048576)
    local msg = "A: \194\160x" .. sp .. "y\227\128\128\t\r\nB:" .. sp
    local line = require("cjson").encode({ message = msg })
    local out = assert(run({ stage.json { expressions = { message = "" } }, stage.eventlogmessage {},
      stage.template { source = "A", template = "{{ len .A }}" }, stage.labels { values = { A = "", B = "" } } },
      { { line = line } }))
    assert.same({ job = "a", A = tostring(1048576 + 2) }, out[1].labels)
  end)
end)

describe("loki.process stages (timestamp duplicates)", function()
  it("gives a stream's entries of the same parsed timestamp 1ns apart, unless action_on_duplicate_timestamp = keep", function()
    local entries = { { line = "t=100 a" }, { line = "t=100 b" }, { line = "t=100 c", labels = { job = "other" } },
      { line = "t=100 d" }, { line = "t=101 e" }, { line = "bad" }, { line = "t=100 f" } }
    local stages = { stage.regex { expression = "^t=(?P<ts>\\d+)" }, stage.timestamp { source = "ts", format = "Unix" } }
    local out = assert(run(stages, entries))
    local got = {}
    for i, e in ipairs(out) do
      got[i] = e.sec .. "." .. e.nsec
    end
    -- c is another stream; bad fails to parse (fudged after e); f is not e's parsed timestamp
    assert.same({ "100.0", "100.1", "100.0", "100.2", "101.0", "101.1", "100.0" }, got)
    stages[2] = stage.timestamp { source = "ts", format = "Unix", action_on_duplicate_timestamp = "keep" }
    out = assert(run(stages, entries))
    assert.same({ 0, 0, 0, 0, 0, 1, 0 }, { out[1].nsec, out[2].nsec, out[3].nsec, out[4].nsec, out[5].nsec,
      out[6].nsec, out[7].nsec })
    local _, err = run({ stage.timestamp { source = "ts", format = "Unix", action_on_duplicate_timestamp = "skip" } }, {})
    assert.matches("must be one of fudge, keep", err, 1, true)
  end)
end)

describe("loki.process stages (multiline trim_newlines)", function()
  it("trims each line's trailing CR/LF before joining (Alloy's default), not with trim_newlines = false", function()
    local entries = { { line = "start 1\r\n" }, { line = "  cont\n\n" }, { line = "start 2" } }
    local out = assert(run({ stage.multiline { firstline = "^start" } }, entries))
    assert.equals("start 1\n  cont", out[1].line)
    out = assert(run({ stage.multiline { firstline = "^start", trim_newlines = false } }, entries))
    assert.equals("start 1\r\n\n  cont\n\n", out[1].line)
  end)

  it("trims in linear time a line with 1 MiB of newlines within it", function()
    local nl = string.rep("\r\n", 524288)
    local out = assert(run({ stage.multiline { firstline = "^start" } },
      { { line = "start a" .. nl .. "b" .. nl }, { line = "start 2" } }))
    assert.equals("start a" .. nl .. "b", out[1].line)
  end)
end)

describe("loki.process stages (geoip)", function()
  local writer = require("helpers.mmdb_writer")
  local mmdb = require("loki.process.mmdb")
  local dir = require("helpers.proc").tmpdir()
  local city = {
    city = { names = { en = "London", de = "London" } },
    continent = { code = "EU", names = { en = "Europe" } },
    country = { iso_code = "GB", names = { en = "United Kingdom" } },
    location = { latitude = 51.5142, longitude = -0.0931, time_zone = "Europe/London" },
    postal = { code = "EC2V" },
    subdivisions = { { iso_code = "ENG", names = { en = "England" } }, { iso_code = "LND", names = { en = "London" } } },
    MyCompany = { DeptName = "ops" },
  }
  local function db(name, networks)
    local path = dir .. "/" .. name .. ".mmdb"
    local f = assert(io.open(path, "wb"))
    f:write(writer.build(networks))
    f:close()
    return path
  end
  local city_db = db("city", { { "81.2.69.0/24", city }, { "2a02:c7f::/32", { country = { iso_code = "DE" } } } })

  it("reads the records of a MaxMind DB for IPv4, IPv4-mapped and IPv6 addresses", function()
    local r = assert(mmdb.open(city_db))
    assert.equals("London", r:lookup("81.2.69.142").city.names.en)
    assert.equals(51.5142, r:lookup("81.2.69.1").location.latitude)
    assert.equals("London", r:lookup("::ffff:81.2.69.142").city.names.en)
    assert.equals("DE", r:lookup("2a02:c7f:1::5").country.iso_code)
    assert.is_nil(r:lookup("81.2.70.1"))
    assert.is_nil(r:lookup("not an ip"))
    assert.is_nil(mmdb.parse_ip("1.2.3.256"))
    assert.is_nil(mmdb.parse_ip("1::2::3"))
    assert.same({ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 }, mmdb.parse_ip("::1"))
    local _, err = mmdb.from_string("garbage", "x.mmdb")
    assert.matches("not a MaxMind DB file", err, 1, true)
    -- pointers let a few KiB describe a record of 200^20 values (20 arrays of 200 pointers to the
    -- next one, below the depth bound): refused after a bound instead of holding the loop for ever
    local function ptr(at) -- a pointer of size 1 (3 bytes) to at >= 2048
      local p = at - 2048
      return string.char(0x28 + math.floor(p / 65536), math.floor(p / 256) % 256, p % 256)
    end
    -- after the metadata marker: at 0 a pointer to the first array (at 2048), then the arrays
    local levels, size = 20, 3 + 200 * 3
    local data = { ptr(2048), ("\0"):rep(2045) }
    for i = 1, levels do
      data[#data + 1] = "\x1D\x04" .. string.char(171) .. ptr(2048 + i * size):rep(200)
    end
    data[#data + 1] = "\xA0" -- the leaf: a uint16 of 0 bytes
    local bomb = "\xAB\xCD\xEFMaxMind.com" .. table.concat(data)
    local t0 = os.clock()
    _, err = mmdb.from_string(bomb, "bomb.mmdb")
    assert.equals("bomb.mmdb: invalid metadata: mmdb: a record of more than 100000 values", err)
    assert.is_true(os.clock() - t0 < 5)
  end)

  it("extracts Alloy's geoip_* values of a city database and custom_lookups", function()
    local out = assert(run({ stage.json { expressions = { ip = "client_ip" } },
      stage.geoip { source = "ip", db = city_db, db_type = "city", custom_lookups = { department = "MyCompany.DeptName" } },
      stage.labels { values = { geoip_city_name = "", geoip_country_name = "", geoip_country_code = "",
        geoip_continent_name = "", geoip_continent_code = "", geoip_location_latitude = "",
        geoip_location_longitude = "", geoip_postal_code = "", geoip_timezone = "", geoip_subdivision_name = "",
        geoip_subdivision_code = "", department = "" } } },
      { { line = '{"client_ip":"81.2.69.142"}' }, { line = '{"client_ip":"10.0.0.1"}' }, { line = '{"client_ip":"x"}' } }))
    assert.same({ job = "a", geoip_city_name = "London", geoip_country_name = "United Kingdom",
      geoip_country_code = "GB", geoip_continent_name = "Europe", geoip_continent_code = "EU",
      geoip_location_latitude = "51.5142", geoip_location_longitude = "-0.0931", geoip_postal_code = "EC2V",
      geoip_timezone = "Europe/London", geoip_subdivision_name = "London", geoip_subdivision_code = "LND",
      department = "ops" }, out[1].labels)
    assert.same({ job = "a" }, out[2].labels) -- not in the database
    assert.same({ job = "a" }, out[3].labels) -- not an address
  end)

  it("gives an address seen before (a cached lookup) the same values, and a non-address none", function()
    local out = assert(run({ stage.json { expressions = { ip = "client_ip" } },
      stage.geoip { source = "ip", db = city_db, db_type = "country" },
      stage.labels { values = { geoip_country_code = "" } } },
      { { line = '{"client_ip":"x"}' }, { line = '{"client_ip":"81.2.69.142"}' }, { line = '{"client_ip":"x"}' },
        { line = '{"client_ip":"81.2.69.142"}' }, { line = '{"client_ip":"2a02:c7f:1::5"}' },
        { line = '{"client_ip":"2a02:c7f:1::5"}' } }))
    assert.same({ job = "a" }, out[1].labels)
    assert.same({ job = "a", geoip_country_code = "GB" }, out[2].labels)
    assert.same({ job = "a" }, out[3].labels)
    assert.same({ job = "a", geoip_country_code = "GB" }, out[4].labels)
    assert.same({ job = "a", geoip_country_code = "DE" }, out[5].labels)
    assert.same({ job = "a", geoip_country_code = "DE" }, out[6].labels)
  end)

  it("extracts country and asn values, and refuses what Alloy refuses", function()
    local asn_db = db("asn", { { "1.128.0.0/11", { autonomous_system_number = 1221,
      autonomous_system_organization = "Telstra Pty Ltd" } } })
    local out = assert(run({ stage.regex { expression = "^(?P<ip>\\S+)" },
      stage.geoip { source = "ip", db = asn_db, db_type = "asn" },
      stage.geoip { source = "ip", db = city_db, db_type = "country" },
      stage.labels { values = { geoip_autonomous_system_number = "", geoip_autonomous_system_organization = "",
        geoip_country_code = "", geoip_city_name = "" } } },
      { { line = "1.128.0.1 x" }, { line = "81.2.69.5 y" } }))
    assert.same({ job = "a", geoip_autonomous_system_number = "1221",
      geoip_autonomous_system_organization = "Telstra Pty Ltd" }, out[1].labels)
    assert.same({ job = "a", geoip_country_code = "GB" }, out[2].labels) -- country: no city name
    for _, c in ipairs({
      { { source = "ip", db = city_db }, "db type or values need to be set" },
      { { source = "ip", db = city_db, db_type = "isp" }, "must be one of" },
      { { source = "", db = city_db, db_type = "city" }, "source cannot be empty" },
      { { source = "ip", db = "", db_type = "city" }, "db path cannot be empty" },
    }) do
      local _, err = run({ stage.geoip(c[1]) }, {})
      assert.matches(c[2], err, 1, true)
    end
  end)
end)
