-- Relabeling as Prometheus does it: a table of cases per action, run through the
-- C rule engine from Lua, and prometheus.relabel over batches with its cache.
local relabel = require("moonwatch.relabel")
local schema = require("moonwatch.schema")
local batches = require("helpers.batches")

local function run(rules, labels)
  local normalized, problems = schema.validate({ args = { rule = relabel.RULE } }, { rule = rules })
  assert(#problems == 0, problems[1] and problems[1].msg)
  local segs = assert(relabel.pipeline(normalized.rule))
  return relabel.apply(segs, labels)
end

local cases = {
  { "replace: copies a source label by default", { { source_labels = { "a" }, target_label = "b" } },
    { a = "foo" }, { a = "foo", b = "foo" } },
  { "replace: regex groups and ${1}", { { source_labels = { "a" }, regex = "f(.*)", target_label = "b",
    replacement = "${1}bar" } }, { a = "foo" }, { a = "foo", b = "oobar" } },
  { "replace: $1x is the group named 1x (empty)", { { source_labels = { "a" }, regex = "(f)(.*)",
    target_label = "b", replacement = "$1x" } }, { a = "foo" }, { a = "foo" } },
  { "replace: named group ${name}", { { source_labels = { "a" }, regex = "(?P<first>.)(?P<rest>.*)",
    target_label = "b", replacement = "${rest}-${first}" } }, { a = "foo" }, { a = "foo", b = "oo-f" } },
  { "replace: no match leaves labels alone", { { source_labels = { "a" }, regex = "x(.*)",
    target_label = "b" } }, { a = "foo" }, { a = "foo" } },
  { "replace: missing source label joins as empty and an empty result deletes the target",
    { { source_labels = { "missing" }, target_label = "a" } }, { a = "foo", c = "x" }, { c = "x" } },
  { "replace: custom separator", { { source_labels = { "a", "b" }, separator = "-", target_label = "c" } },
    { a = "x", b = "y" }, { a = "x", b = "y", c = "x-y" } },
  { "replace: default separator is ;", { { source_labels = { "a", "b", "z" }, target_label = "c" } },
    { a = "x", b = "y" }, { a = "x", b = "y", c = "x;y;" } },
  { "replace: regex is fully anchored", { { source_labels = { "a" }, regex = "o", target_label = "b",
    replacement = "hit" } }, { a = "foo" }, { a = "foo" } },
  { "replace: dot matches newline (dot-all)", { { source_labels = { "a" }, regex = "f.*", target_label = "b",
    replacement = "hit" } }, { a = "f\noo" }, { a = "f\noo", b = "hit" } },
  { "replace: an invalid target label after expansion is skipped", { { source_labels = { "a" },
    regex = "(.*)", target_label = "${1}", replacement = "v" } }, { a = "0bad" }, { a = "0bad" } },
  { "replace: target label from a group", { { source_labels = { "a" }, regex = "(.*)", target_label = "l_${1}",
    replacement = "v" } }, { a = "ok" }, { a = "ok", l_ok = "v" } },
  { "keep: a match keeps", { { source_labels = { "a" }, regex = "f.*", action = "keep" } },
    { a = "foo" }, { a = "foo" } },
  { "keep: no match drops", { { source_labels = { "a" }, regex = "b.*", action = "keep" } },
    { a = "foo" }, nil },
  { "keep: missing label is the empty string", { { source_labels = { "x" }, regex = "", action = "keep" } },
    { a = "foo" }, { a = "foo" } },
  { "drop: a match drops", { { source_labels = { "a" }, regex = "f.*", action = "drop" } }, { a = "foo" }, nil },
  { "drop: no match keeps", { { source_labels = { "a" }, regex = "b.*", action = "drop" } },
    { a = "foo" }, { a = "foo" } },
  { "keepequal: equal keeps", { { source_labels = { "a" }, target_label = "b", action = "keepequal" } },
    { a = "x", b = "x" }, { a = "x", b = "x" } },
  { "keepequal: different drops", { { source_labels = { "a" }, target_label = "b", action = "keepequal" } },
    { a = "x", b = "y" }, nil },
  { "dropequal: equal drops", { { source_labels = { "a" }, target_label = "b", action = "dropequal" } },
    { a = "x", b = "x" }, nil },
  { "dropequal: different keeps", { { source_labels = { "a" }, target_label = "b", action = "dropequal" } },
    { a = "x", b = "y" }, { a = "x", b = "y" } },
  -- hashmod values from Prometheus's relabel_test.go
  { "hashmod: md5, last 8 bytes big-endian, mod modulus", { { source_labels = { "c" }, target_label = "d",
    modulus = 1000, action = "hashmod" } }, { a = "foo", b = "bar", c = "baz" },
    { a = "foo", b = "bar", c = "baz", d = "976" } },
  { "hashmod: a value with a newline", { { source_labels = { "a" }, target_label = "b", modulus = 1000,
    action = "hashmod" } }, { a = "foo\nbar" }, { a = "foo\nbar", b = "734" } },
  { "labelmap: copies matching labels with $1", { { regex = "__meta_(.+)", action = "labelmap" } },
    { __meta_zone = "eu", a = "x" }, { __meta_zone = "eu", zone = "eu", a = "x" } },
  { "labelmap: replacement template", { { regex = "(b.*)", replacement = "bar_${1}", action = "labelmap" } },
    { b1 = "x", a = "y" }, { b1 = "x", bar_b1 = "x", a = "y" } },
  { "labeldrop: drops matching names", { { regex = "b.*", action = "labeldrop" } },
    { a = "x", b1 = "y", b2 = "z" }, { a = "x" } },
  { "labelkeep: keeps matching names", { { regex = "b.*", action = "labelkeep" } },
    { a = "x", b1 = "y", b2 = "z" }, { b1 = "y", b2 = "z" } },
  { "lowercase", { { source_labels = { "a" }, target_label = "b", action = "lowercase" } },
    { a = "FoO" }, { a = "FoO", b = "foo" } },
  { "uppercase", { { source_labels = { "a" }, target_label = "b", action = "uppercase" } },
    { a = "FoO" }, { a = "FoO", b = "FOO" } },
  { "rules apply in order", { { source_labels = { "a" }, target_label = "b" },
    { source_labels = { "b" }, regex = "foo", action = "drop" } }, { a = "foo" }, nil },
  { "a Lua function rule (slow path)", { { source_labels = { "a" }, target_label = "b" }, function(l)
    l.c = l.b .. "!"
    return l
  end }, { a = "x" }, { a = "x", b = "x", c = "x!" } },
  { "a Lua function returning nil drops", { function()
    return nil
  end }, { a = "x" }, nil },
}

describe("relabel rules", function()
  for _, c in ipairs(cases) do
    it(c[1], function()
      assert.same(c[4], run(c[2], c[3]))
    end)
  end

  -- each rule is checked on its own by the schema (its regex as a field, what its action needs by
  -- the block's validate), so one rule's problem hides no other's
  local bad = {
    { { { regex = "(?=x)" } }, 'rule[1].regex: invalid regex "(?=x)": lookahead (?= is not supported (RE2 syntax)' },
    { { { regex = "(a)\\1" } }, 'rule[1].regex: invalid regex "(a)\\\\1": backreference' },
    { { { regex = "a*+" } }, 'rule[1].regex: invalid regex "a*+":' },
    { { { action = "hashmod", source_labels = { "a" }, target_label = "b" } },
      "rule[1]: modulus: relabel configuration for hashmod requires non-zero modulus" },
    { { { source_labels = { "a" }, target_label = "b" }, { action = "uppercase", source_labels = { "a" } } },
      "rule[2]: target_label:" },
  }
  for _, b in ipairs(bad) do
    it("rejects at load time: " .. b[2], function()
      local _, problems = schema.validate({ args = { rule = relabel.RULE } }, { rule = b[1] })
      assert.equals(1, #problems)
      assert.matches(b[2], problems[1].path .. ": " .. problems[1].msg, 1, true)
    end)
  end

  it("rejects at load time, as pipeline() compiles: rule 1: regex", function()
    local segs, err = relabel.pipeline({ { source_labels = {}, separator = ";", regex = "(?=x)", modulus = 0,
      target_label = "a", replacement = "$1", action = "replace" } })
    assert.is_nil(segs)
    assert.matches("rule 1: regex: lookahead (?= is not supported (RE2 syntax)", err, 1, true)
  end)
end)

describe("prometheus.relabel", function()
  local mod = dofile((os.getenv("MOONWATCH_SOURCE_DIR") or ".") .. "/stdlib/prometheus/relabel.lua")

  local function component(rules, max_cache_size, cache_ttl)
    local rec = batches.recorder()
    local args = schema.validate({ args = mod.args }, { forward_to = { rec }, rule = rules,
      max_cache_size = max_cache_size, cache_ttl = cache_ttl })
    local exports = {}
    local ctx = { id = "prometheus.relabel.test", log = require("moonwatch.log").new({}),
      export = function(_, e)
        for k, v in pairs(e) do
          exports[k] = v
        end
      end }
    local inst = mod.new(ctx, args)
    return inst, exports, rec
  end

  it("relabels a batch, drops what the rules drop, and serves repeats from the cache", function()
    local inst, exports, rec = component({
      { source_labels = { "__name__" }, regex = "keep_.*", action = "keep" },
      { source_labels = { "instance" }, regex = "([^:]+):.*", target_label = "host" },
      { regex = "instance", action = "labeldrop" },
    })
    local body = 'keep_a{instance="h1:9100"} 1\nkeep_b{instance="h2:9100"} 2\ndrop_c 3\n'
    local b, keepalive = batches.from_text(body, 5000)
    exports.receiver:append(b)
    assert.equals(2, #rec.samples)
    assert.same({ __name__ = "keep_a", host = "h1" }, rec.samples[1].labels)
    assert.same({ __name__ = "keep_b", host = "h2" }, rec.samples[2].labels)
    assert.equals(5000, rec.samples[1].ts)
    assert.equals(2, rec.samples[2].value)
    exports.receiver:append(b)
    assert.equals(4, #rec.samples)
    local st = inst.cache:stats()
    assert.equals(3, tonumber(st.hits)) -- second batch: all three from the cache
    assert.equals(0, tonumber(st.misses))
    assert.equals(3, inst.cache:len())
    assert.truthy(keepalive)
  end)

  it("runs Lua function rules for cache misses only", function()
    local calls = 0
    local _, exports, rec = component({ function(l)
      calls = calls + 1
      l.seen = "yes"
      return l
    end })
    local b, keepalive = batches.from_text("a 1\nb 2\n")
    exports.receiver:append(b)
    exports.receiver:append(b)
    assert.equals(2, calls)
    assert.equals(4, #rec.samples)
    assert.equals("yes", rec.samples[4].labels.seen)
    assert.truthy(keepalive)
  end)

  it("empties the cache when it would grow past max_cache_size", function()
    local inst, exports, rec = component({}, 2)
    local b, keepalive = batches.from_text("a 1\nb 2\nc 3\n")
    exports.receiver:append(b)
    exports.receiver:append(b)
    assert.equals(6, #rec.samples)
    assert.is_true(tonumber(inst.cache:stats().flushes) >= 1)
    assert.truthy(keepalive)
  end)

  it("checks the cache modes as Alloy: max_cache_size or cache_ttl (at least 1m), not both", function()
    local function problems(args)
      args.forward_to = {}
      local _, p = schema.validate({ args = mod.args, validate = mod.validate }, args)
      return p and p[1] and p[1].msg or nil
    end
    assert.is_nil(problems({}))
    assert.is_nil(problems({ max_cache_size = 0, cache_ttl = "10m" }))
    assert.matches("one of max_cache_size or cache_ttl must be set", problems({ max_cache_size = 0 }), 1, true)
    assert.matches("max_cache_size and cache_ttl are mutually exclusive", problems({ cache_ttl = "10m" }), 1, true)
    assert.matches("cache_ttl must be at least 1m when set; got 30s",
      problems({ max_cache_size = 0, cache_ttl = "30s" }), 1, true)
    assert.matches("must be between 0 and", problems({ max_cache_size = -1 }), 1, true)
  end)

  it("in TTL mode (max_cache_size = 0) holds every series, and forgets them all once per cache_ttl", function()
    local metrics = require("moonwatch.metrics")
    local inst, exports, rec = component({}, 0, "1m")
    local b, keepalive = batches.from_text("a 1\nb 2\nc 3\n")
    exports.receiver:append(b)
    exports.receiver:append(b)
    assert.equals(3, inst.cache:len())
    assert.equals(0, tonumber(inst.cache:stats().flushes)) -- no size bound
    assert.equals(3, tonumber(inst.cache:stats().hits))
    inst.cleared = inst.cleared - 60 -- a minute later
    local b2, keepalive2 = batches.from_text("d 4\n")
    exports.receiver:append(b2)
    assert.equals(1, inst.cache:len()) -- a, b and c forgotten
    assert.equals(7, #rec.samples)
    assert.same({ __name__ = "d" }, rec.samples[7].labels)
    assert.matches('prometheus_relabel_cache_ttl_evictions{component_id="prometheus.relabel.test"} 3',
      metrics.default:expose(), 1, true)
    assert.truthy(keepalive and keepalive2)
  end)

  it("in TTL mode keeps the results while less than cache_ttl has passed since the cache was last emptied", function()
    local inst, exports, rec = component({}, 0, "1m")
    local b, keepalive = batches.from_text("a 1\nb 2\nc 3\n")
    exports.receiver:append(b)
    inst.cleared = inst.cleared - 50 -- 50 s later: under the TTL
    exports.receiver:append(b)
    assert.equals(3, inst.cache:len())
    assert.equals(3, tonumber(inst.cache:stats().hits)) -- served from the cache, not relabeled again
    inst.cleared = inst.cleared - 10 -- a minute after the first batch: forgotten, relabeled again
    exports.receiver:append(b)
    assert.equals(3, inst.cache:len())
    assert.equals(0, tonumber(inst.cache:stats().hits)) -- (the stats start again with the cache)
    assert.equals(9, #rec.samples)
    assert.truthy(keepalive)
  end)

  -- native histograms: a histogram sample goes where its series goes (same cache, same
  -- rules), float samples and exemplars of the same batch unchanged
  local function hist_batch()
    local samples = require("moonwatch.batch.samples")
    local b = samples.new()
    samples.add(b, { __name__ = "keep_f", instance = "h1:1" }, 1000, 7)
    local h = { schema = 1, count = 3, zero_count = 1, sum = 4.5, positive_spans = { { 0, 2 } },
      positive_deltas = { 1, 0 } }
    samples.add_histogram(b, { __name__ = "keep_h", instance = "h2:1" }, 2000, h)
    samples.add_histogram(b, { __name__ = "drop_h", instance = "h3:1" }, 2000, h)
    samples.add_histogram(b, { __name__ = "keep_h", instance = "h2:1" }, 3000, { stale = true })
    return b
  end

  it("keeps and drops native histogram samples with their series, through the cache", function()
    local inst, exports, rec = component({
      { source_labels = { "__name__" }, regex = "keep_.*", action = "keep" },
      { source_labels = { "instance" }, regex = "([^:]+):.*", target_label = "host" },
    })
    local b = hist_batch()
    exports.receiver:append(b)
    assert.equals(1, #rec.samples)
    assert.same({ __name__ = "keep_f", instance = "h1:1", host = "h1" }, rec.samples[1].labels)
    assert.equals(2, #rec.histograms)
    local h = rec.histograms[1]
    assert.same({ __name__ = "keep_h", instance = "h2:1", host = "h2" }, h.labels)
    assert.equals(2000, h.ts)
    assert.equals(3, h.count)
    assert.equals(4.5, h.sum)
    assert.same({ 1, 0 }, h.positive_deltas)
    assert.is_true(rec.histograms[2].stale)
    assert.equals(3000, rec.histograms[2].ts)
    exports.receiver:append(b)
    local st = inst.cache:stats()
    assert.equals(4, tonumber(st.hits)) -- second batch: all from the cache
    assert.equals(4, tonumber(st.processed))
    assert.equals(3, tonumber(st.written))
    assert.equals(4, #rec.histograms)
  end)

  it("runs Lua function rules for histogram series misses", function()
    local _, exports, rec = component({ function(l)
      if l.__name__ == "drop_h" then
        return nil
      end
      l.seen = "yes"
      return l
    end })
    exports.receiver:append(hist_batch())
    assert.equals(1, #rec.samples)
    assert.equals(2, #rec.histograms)
    assert.equals("yes", rec.histograms[1].labels.seen)
    assert.equals("keep_h", rec.histograms[1].labels.__name__)
    assert.is_true(rec.histograms[2].stale)
  end)

  it("forwards a batch of histograms only (no float sample)", function()
    local samples = require("moonwatch.batch.samples")
    local _, exports, rec = component({})
    local b = samples.new()
    samples.add_histogram(b, { __name__ = "h" }, 1, { float = true, count = 1, zero_count = 1 })
    exports.receiver:append(b)
    assert.equals(1, #rec.histograms)
    assert.is_true(rec.histograms[1].float)
  end)

  it("passes staleness markers through", function()
    local _, exports, rec = component({})
    local body = "a 1\n"
    local b, t = batches.from_text(body)
    local C = require("moonwatch.ffi").C
    C.mw_ffi_scrape_stale(t, 2000)
    exports.receiver:append(C.mw_ffi_scrape_batch(t))
    assert.equals(1, #rec.samples)
    assert.is_true(rec.samples[1].stale)
    assert.truthy(b)
  end)
end)

describe("discovery.relabel", function()
  local mod = dofile((os.getenv("MOONWATCH_SOURCE_DIR") or ".") .. "/stdlib/discovery/relabel.lua")

  it("rewrites and filters targets and exports output", function()
    local exports = {}
    local ctx = { id = "discovery.relabel.t", export = function(_, e)
      for k, v in pairs(e) do
        exports[k] = v
      end
    end }
    local args = schema.validate({ args = mod.args }, {
      targets = { { __address__ = "a:9100", __meta_env = "prod" }, { __address__ = "b:9100", __meta_env = "dev" } },
      rule = {
        { source_labels = { "__meta_env" }, regex = "prod", action = "keep" },
        { source_labels = { "__meta_env" }, target_label = "env" },
      },
    })
    local inst = mod.new(ctx, args)
    assert.same({ { __address__ = "a:9100", __meta_env = "prod", env = "prod" } }, exports.output)
    assert.equals(2, #exports.rules)
    assert.same({ targets_in = 2, targets_out = 1 }, inst:debug_info())
  end)
end)

describe("relabel rules in a pipeline", function()
  it("report a bad rule at load time with file and line", function()
    local proc = require("helpers.proc")
    local controller = require("moonwatch.controller")
    local src = os.getenv("MOONWATCH_SOURCE_DIR") or "."
    local file = proc.write(proc.tmpdir() .. "/p.lua", [[
prometheus.echo "out" {}
prometheus.relabel "x" {
  forward_to = { prometheus.echo.out.receiver },
  rule = { { source_labels = { "a" }, regex = "(?!b)", target_label = "c" } },
}
]])
    local ctrl = controller.new({ component_path = { src .. "/stdlib" } })
    local plan, problems = ctrl:plan(file)
    assert.is_nil(plan)
    assert.matches(file .. ':2: prometheus.relabel "x": rule[1].regex: invalid regex "(?!b)": lookahead (?! is not'
      .. ' supported (RE2 syntax)',
      problems[1], 1, true)
  end)
end)
