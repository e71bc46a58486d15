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

  -- Prometheus's view of series name at time t (ms): { count, sum, buckets = { "rule lo hi" = n } }.
  local function prom_hist(port, query, t)
    local _, body = proc.http("GET", string.format("http://127.0.0.1:%d/api/v1/query?query=%s&time=%.3f", port,
      query, t / 1000))
    local ok, doc = pcall(cjson.decode, body)
    local r = ok and doc.data and doc.data.result and doc.data.result[1]
    if not r then
      return nil
    end
    if r.value then
      return { value = tonumber(r.value[2]) }
    end
    local h = r.histogram[2]
    local out = { count = tonumber(h.count), sum = tonumber(h.sum), buckets = {} }
    for _, b in ipairs(h.buckets or {}) do
      out.buckets[string.format("%d %s %s", b[1], b[2], b[3])] = tonumber(b[4])
    end
    return out
  end

  local function rw_pipeline(name, base, samples, urls)
    local eps = {}
    for _, u in ipairs(urls) do
      eps[#eps + 1] = string.format("{ url = %q, send_native_histograms = %s,"
        .. " queue_config = { batch_send_deadline = \"100ms\", min_backoff = \"50ms\", max_backoff = \"200ms\" } }",
        u[1], tostring(u[2]))
    end
    return pipeline(name, string.format([[
test.samplesource "s" {
  base_ts = %d,
  samples = %s,
  forward_to = { prometheus.remote_write.out.receiver },
}
prometheus.remote_write "out" {
  endpoint = { %s },
}
]], base, lua(samples), table.concat(eps, ", ")))
  end

  -- What remote_write sends to Prometheus: the integer histograms (Prometheus 2.42's receiver reads
  -- count_int and the deltas only: it does not store float histograms, whose encoding test_rwenc
  -- checks byte for byte against protobuf-c), and an integer stale marker ending wide_bytes.
  local function rw_samples()
    local out = {}
    for _, e in ipairs(hist_samples()) do
      if e.labels.__name__ ~= "temp_celsius" then
        out[#out + 1] = e
      end
    end
    out[#out + 1] = { labels = { __name__ = "wide_bytes", job = "a" }, t = 15000, histogram = { stale = true } }
    return out
  end
  local NHIST = 6

  -- What the source sends, as Prometheus must store it (bucket rules: 0 (lo,hi], 1 [lo,hi), 3 [lo,hi]).
  local function check_prometheus(port, base)
    local rpc = prom_hist(port, "rpc_seconds", base + 15000)
    assert.same({ count = 10, sum = 16.25, buckets = { ["1 -2 -1"] = 2, ["3 -0.001 0.001"] = 3, ["0 0.5 1"] = 2,
      ["0 1 2"] = 2, ["0 4 8"] = 1 } }, rpc)
    assert.same({ count = 7, sum = 10.5, buckets = { ["1 -2 -1"] = 1, ["3 -0.001 0.001"] = 2, ["0 0.5 1"] = 1,
      ["0 1 2"] = 2, ["0 4 8"] = 1 } }, prom_hist(port, "rpc_seconds", base))
    -- the counter reset
    assert.same({ count = 1, sum = 1.5, buckets = { ["0 1 2"] = 1 } }, prom_hist(port, "rpc_seconds", base + 30000))
    assert.same({ count = 4, sum = 300, buckets = { ["3 -0.5 0.5"] = 1, ["0 1 16"] = 2, ["0 16 256"] = 1 } },
      prom_hist(port, "wide_bytes", base))
    local size = prom_hist(port, "size_bytes", base)
    assert.equals(7, size.count)
    assert.equals(9.75, size.sum)
    local n = 0
    for k, v in pairs(size.buckets) do
      n = n + v
      assert.matches("^0 ", k)
    end
    assert.equals(7, n)
    -- the stale marker ends wide_bytes: nothing at base + 15 s (without it, the lookback would find base's)
    assert.is_nil(prom_hist(port, "wide_bytes", base + 15000))
    assert.truthy(prom_hist(port, "rpc_seconds", base + 20000))
    -- histogram_quantile over the native histogram: ranks 7 and 9 of 10 end buckets (0.5,1] and (1,2]
    assert.equals(1, prom_hist(port, "histogram_quantile(0.7,rpc_seconds)", base + 15000).value)
    assert.equals(2, prom_hist(port, "histogram_quantile(0.9,rpc_seconds)", base + 15000).value)
    assert.equals(1, prom_hist(port, "up", base).value)
  end

  it("reach Prometheus exactly with send_native_histograms; without it only the floats do, the drop counted",
    function()
      local pa, pb = proc.free_port(), proc.free_port()
      proc.start_prometheus(pa, tmp .. "/prom-a", "--enable-feature=native-histograms")
      proc.start_prometheus(pb, tmp .. "/prom-b", "--enable-feature=native-histograms")
      local base = (math.floor(os.time()) - 60) * 1000
      local f = rw_pipeline("rw", base, rw_samples(), {
        { "http://127.0.0.1:" .. pa .. "/api/v1/write", true },
        { "http://127.0.0.1:" .. pb .. "/api/v1/write", false } })
      local h = proc.start_run(f, { "--component.path=" .. FIXTURES, "--storage.path=" .. tmp .. "/data-rw" })
      proc.wait_for(function()
        return proc.metric(h, "prometheus_remote_storage_histograms_total", tostring(pa)) >= NHIST
          and proc.metric(h, "prometheus_remote_storage_samples_total", tostring(pb)) >= 1
          and proc.metric(h, "prometheus_remote_storage_histograms_dropped_total", tostring(pb)) >= NHIST
      end, 20, "histograms sent to A, dropped for B")
      assert.equals(NHIST, proc.metric(h, "prometheus_remote_storage_histograms_total", tostring(pa)))
      assert.equals(0, proc.metric(h, "prometheus_remote_storage_histograms_total", tostring(pb)))
      assert.equals(NHIST, proc.metric(h, "prometheus_remote_storage_histograms_dropped_total",
        'reason="send_native_histograms_disabled",url="http://127.0.0.1:' .. pb))
      assert.equals(0, proc.metric(h, "prometheus_remote_storage_histograms_failed_total"))
      h.kill()
      assert.equals(0, h.wait(15))
      check_prometheus(pa, base)
      -- B got the float series only
      assert.equals(1, prom_hist(pb, "up", base).value)
      assert.is_nil(prom_hist(pb, "rpc_seconds", base))
      assert.is_nil(prom_hist(pb, "count({__name__=~\"rpc_seconds|temp_celsius|size_bytes|wide_bytes\"})", base))
    end)

  it("replays histograms from the WAL after SIGKILL, exactly once across restarts", function()
    local port = proc.free_port()
    local url = "http://127.0.0.1:" .. port .. "/api/v1/write"
    local base = (math.floor(os.time()) - 60) * 1000
    local data = tmp .. "/data-kill"
    local args = { "--component.path=" .. FIXTURES, "--storage.path=" .. data }
    -- 1: nothing listens yet: the histograms wait in the WAL; SIGKILL
    local h = proc.start_run(rw_pipeline("kill1", base, rw_samples(), { { url, true } }), args)
    proc.wait_for(function()
      return proc.metric(h, "prometheus_remote_storage_histograms_retried_total") >= NHIST
    end, 20, "retries")
    h.kill("KILL")
    h.wait(10)
    -- 2: Prometheus up, the source sends nothing new: the WAL's histograms arrive, once
    proc.start_prometheus(port, tmp .. "/prom-kill", "--enable-feature=native-histograms")
    h = proc.start_run(rw_pipeline("kill2", base, {}, { { url, true } }), args)
    proc.wait_for(function()
      return proc.metric(h, "prometheus_remote_storage_histograms_total") >= NHIST
    end, 20, "the replayed histograms sent")
    os.execute("sleep 1")
    assert.equals(NHIST, proc.metric(h, "prometheus_remote_storage_histograms_total"))
    assert.equals(1, proc.metric(h, "prometheus_remote_storage_samples_total"))
    h.kill("TERM")
    assert.equals(0, h.wait(15))
    check_prometheus(port, base)
    -- 3: after SIGTERM nothing is sent again
    h = proc.start_run(rw_pipeline("kill3", base, {}, { { url, true } }), args)
    os.execute("sleep 1.5")
    assert.equals(0, proc.metric(h, "prometheus_remote_storage_histograms_total"))
    assert.equals(0, proc.metric(h, "prometheus_remote_storage_samples_total"))
    h.kill("TERM")
    assert.equals(0, h.wait(15))
  end)
end)
