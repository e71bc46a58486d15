-- prometheus.scrape and the protobuf exposition format: negotiation (the Accept header from
-- scrape_protocols, scrape_native_histograms, enable_protobuf_negotiation), a real
-- client_golang target (tests/e2e/fixtures/nhtarget) scraped in both formats, native
-- histograms (buckets equal to the observations, float counts, the bucket limit,
-- scrape_classic_histograms) and histogram staleness markers.
local controller = require("moonwatch.controller")
local http_server = require("moonwatch.http_server")
local loop = require("helpers.loop")
local proc = require("helpers.proc")
local nhtarget = require("helpers.nhtarget")
local log = require("moonwatch.log")

local SRC = os.getenv("MOONWATCH_SOURCE_DIR") or "."
local DIRS = { SRC .. "/tests/lua/fixtures/components", SRC .. "/stdlib" }
local tmp = proc.tmpdir()
local PROTO_CT = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
local PROTO_ACCEPT = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"

-- The observations nhtarget's latency_seconds got (main.go's latencyObs).
local LATENCY = { 0, 0.003, 0.05, 0.2, 0.2, 0.3, 0.7, 1.5, 3, 8, 40, -2 }

local target_addr, target_pid, pb_body

-- An in-process server: records the Accept header, serves a protobuf body (pb_served).
local server = assert(http_server.listen("127.0.0.1:0"))
local base = server:addr()
local last_accept
local pb_served
server:route("GET", "/proto", function(req)
  last_accept = req.headers["accept"]
  return 200, pb_served, { ["Content-Type"] = PROTO_CT }
end)
server:route("GET", "/noctype", function()
  return 200, pb_served, { ["Content-Type"] = "application/octet-stream" }
end)

-- The families of a length-delimited protobuf body, as a list of raw messages (prefix included).
local function families(body)
  local out, pos = {}, 1
  while pos <= #body do
    local len, shift, start = 0, 0, pos
    repeat
      local b = body:byte(pos)
      len = len + (b % 128) * 2 ^ shift
      shift = shift + 7
      pos = pos + 1
    until b < 128
    out[#out + 1] = body:sub(start, pos + len - 1)
    pos = pos + len
  end
  return out
end

local function pipeline(targets, extra)
  local file = proc.write(tmp .. "/p" .. math.random(1e9) .. ".lua", string.format([[
test.recorder "r" {}
prometheus.scrape "s" {
  targets = %s,
  forward_to = { test.recorder.r.receiver },
  job_name = "nh",
  scrape_interval = "1s",
  scrape_timeout = "900ms",
  %s
}
]], targets, extra or ""))
  local ctrl = controller.new({ component_path = DIRS, storage_path = tmp .. "/data" })
  local ok, problems = ctrl:load(file)
  assert(ok, problems and table.concat(problems, "\n"))
  return ctrl, _G.test_recorders["test.recorder.r"]
end

local function find(list, name, pred)
  for _, s in ipairs(list) do
    if s.labels.__name__ == name and (not pred or pred(s)) then
      return s
    end
  end
end

-- Runs until the recorder has `want` (a predicate on it), then stops.
local function scrape_until(targets, extra, want, what)
  local ctrl, rec = pipeline(targets, extra)
  local ok = loop.run_until(function()
    return want(rec)
  end, 10)
  local info = ctrl.nodes["prometheus.scrape.s"].instance:debug_info().targets[1]
  ctrl:stop()
  assert(ok, string.format("no %s; last scrape error: %s", what or "samples", info and info.last_error))
  return rec, info
end

local function once(targets, extra)
  return scrape_until(targets, extra, function(rec)
    return find(rec.samples, "up")
  end, "up")
end

local function tgt(addr, path)
  return string.format("{{ __address__ = %q, __metrics_path__ = %q }}", addr, path or "/metrics")
end

-- The absolute count of each native bucket of a histogram table, by index: "p<i>" for the
-- positive side, "n<i>" for the negative one.
local function buckets(h)
  local out = {}
  for side, key in pairs({ positive = "p", negative = "n" }) do
    local spans, vals = h[side .. "_spans"], h.float and h[side .. "_counts"] or h[side .. "_deltas"]
    local idx, k, run = 0, 0, 0
    for _, s in ipairs(spans) do
      idx = idx + s.offset
      for _ = 1, s.length do
        k = k + 1
        run = h.float and vals[k] or run + vals[k]
        if run ~= 0 then
          out[key .. idx] = run
        end
        idx = idx + 1
      end
    end
  end
  return out
end

-- The buckets observations vs fall in at schema: index ceil(log2(|v|) * 2^schema).
local function expected_buckets(vs, schema, zero_threshold)
  local out, zero = {}, 0
  for _, v in ipairs(vs) do
    if math.abs(v) <= zero_threshold then
      zero = zero + 1
    else
      local i = math.ceil(math.log(math.abs(v)) / math.log(2) * 2 ^ schema - 1e-9)
      local key = string.format("%s%d", v < 0 and "n" or "p", i)
      out[key] = (out[key] or 0) + 1
    end
  end
  return out, zero
end

describe("prometheus.scrape with the protobuf format", function()
  setup(function()
    log.configure({ level = "error" })
    target_addr, target_pid = nhtarget.start()
    local status, body = proc.http("GET", "http://" .. target_addr .. "/metrics", { headers = { "Accept: "
      .. PROTO_ACCEPT } })
    assert(status == 200 and #body > 0)
    pb_body = body
    pb_served = body
  end)
  teardown(function()
    if target_pid then
      os.execute("kill " .. target_pid .. " 2>/dev/null")
    end
  end)
  before_each(function()
    _G.test_recorders = {}
    pb_served = pb_body
  end)

  it("asks for PrometheusProto first with scrape_native_histograms, as Prometheus builds the header", function()
    once(tgt(base, "/proto"), "scrape_native_histograms = true,")
    assert.equals(PROTO_ACCEPT .. ";q=0.6,application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5,"
      .. "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=underscores;q=0.3,"
      .. "text/plain;version=0.0.4;q=0.2,*/*;q=0.1", last_accept)
    -- the deprecated enable_protobuf_negotiation: Alloy's protocol list
    once(tgt(base, "/proto"), "enable_protobuf_negotiation = true,")
    assert.equals(PROTO_ACCEPT .. ";q=0.6,application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5,"
      .. "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2", last_accept)
    -- without either: the text formats only
    once(tgt(base, "/proto"))
    assert.falsy(last_accept:find("protobuf", 1, true))
    -- explicit protocols win
    once(tgt(base, "/proto"), 'scrape_native_histograms = true, scrape_protocols = { "PrometheusText0.0.4" },')
    assert.equals("text/plain;version=0.0.4;q=0.6,*/*;q=0.5", last_accept)
  end)

  it("refuses enable_protobuf_negotiation with scrape_protocols, repeated protocols and unknown ones", function()
    local function problems(extra)
      local file = proc.write(tmp .. "/bad" .. math.random(1e9) .. ".lua", string.format([[
prometheus.scrape "s" {
  targets = {},
  forward_to = {},
  %s
}
]], extra))
      local ctrl = controller.new({ component_path = DIRS, storage_path = tmp .. "/data" })
      local ok, probs = ctrl:load(file)
      assert.is_nil(ok)
      return table.concat(probs, "\n")
    end
    assert.truthy(problems('enable_protobuf_negotiation = true, scrape_protocols = { "PrometheusProto" },')
      :find("both enable_protobuf_negotiation and scrape_protocols are set, only one can be set at a time", 1, true))
    assert.truthy(problems('scrape_protocols = { "PrometheusProto", "PrometheusProto" },')
      :find('duplicate scrape protocol "PrometheusProto"', 1, true))
    assert.truthy(problems('scrape_protocols = { "Proto" },'):find('unknown scrape protocol "Proto"', 1, true))
  end)

  it("refuses a negative native_histogram_min_bucket_factor, naming it", function()
    local file = proc.write(tmp .. "/badfactor.lua", [[
prometheus.scrape "s" {
  targets = {},
  forward_to = {},
  native_histogram_min_bucket_factor = -1.5,
}
]])
    local ctrl = controller.new({ component_path = DIRS, storage_path = tmp .. "/data" })
    local ok, probs = ctrl:load(file)
    assert.is_nil(ok)
    assert.truthy(table.concat(probs, "\n"):find("native_histogram_min_bucket_factor must not be negative", 1, true))
  end)

  it("parses a body by its Content-Type, and by scrape_fallback_protocol when it has another", function()
    local rec = once(tgt(base, "/proto"))
    assert.equals(5, find(rec.samples, "requests_total", function(s)
      return s.labels.code == "200"
    end).value)
    rec = once(tgt(base, "/noctype"), 'scrape_fallback_protocol = "PrometheusProto",')
    assert.equals(21.5, find(rec.samples, "temperature_celsius").value)
    local _, info = once(tgt(base, "/noctype"))
    assert.truthy(info.last_error:find("^line 1"), info.last_error) -- parsed as text, which fails
  end)

  it("applies sample_limit and the label limits to protobuf bodies as to text ones", function()
    local rec, info = once(tgt(base, "/proto"), "sample_limit = 3,")
    assert.equals(0, find(rec.samples, "up").value)
    assert.equals("sample limit exceeded", info.last_error)
    assert.equals(4, find(rec.samples, "scrape_samples_scraped").value) -- parsed until past the limit
    rec, info = once(tgt(base, "/proto"), "label_limit = 2,")
    assert.equals(0, find(rec.samples, "up").value)
    assert.truthy(info.last_error:find("label_limit exceeded (metric: ", 1, true), info.last_error)
    assert.truthy(info.last_error:find('^metric family #%d+ %("'), info.last_error)
  end)

  it("gets from client_golang's protobuf what it gets from its text, histograms aside", function()
    local function series(rec)
      local out = {}
      for _, s in ipairs(rec.samples) do
        local n = s.labels.__name__
        if not n:find("^latency_seconds") and not n:find("^float_hist") and not n:find("^scrape_")
          and n ~= "up" then
          local ls = {}
          for _, k in ipairs(proc.sorted_keys(s.labels)) do
            ls[#ls + 1] = k .. "=" .. s.labels[k]
          end
          out[#out + 1] = table.concat(ls, ",") .. " " .. string.format("%.17g", s.value)
        end
      end
      table.sort(out)
      return out
    end
    local text = once(tgt(target_addr), 'scrape_protocols = { "PrometheusText0.0.4" },')
    local pb = once(tgt(target_addr), "scrape_native_histograms = true,")
    assert.same(series(text), series(pb))
    assert.equals(7, #series(pb)) -- 2 counters, a summary's 4 series, a gauge
  end)

  it("turns client_golang's native histogram into one sample whose buckets are the observations", function()
    local rec = scrape_until(tgt(target_addr), "scrape_native_histograms = true,", function(r)
      return find(r.histograms, "float_hist") and find(r.histograms, "latency_seconds")
    end, "histograms")
    assert.is_nil(find(rec.samples, "latency_seconds_bucket")) -- native only, as Prometheus
    local h = find(rec.histograms, "latency_seconds")
    assert.same({ __name__ = "latency_seconds", job = "nh", instance = target_addr }, h.labels)
    assert.is_false(h.float)
    assert.equals(#LATENCY, h.count)
    local sum = 0
    for _, v in ipairs(LATENCY) do
      sum = sum + v
    end
    assert.near(sum, h.sum, 1e-9)
    local want, zero = expected_buckets(LATENCY, h.schema, h.zero_threshold)
    assert.equals(zero, h.zero_count)
    assert.same(want, buckets(h))
    assert.equals("unknown", h.reset_hint)
    -- the float histogram
    local f = find(rec.histograms, "float_hist")
    assert.is_true(f.float)
    assert.equals(3.5, f.count)
    assert.equals(0.5, f.zero_count)
    assert.equals(0, f.schema)
    assert.same({ p1 = 1.25, p2 = 1.75 }, buckets(f))
    -- up and scrape_samples_scraped count a histogram as one sample (Prometheus)
    assert.equals(1, find(rec.samples, "up").value)
    assert.equals(2 + 4 + 2 + 1, find(rec.samples, "scrape_samples_scraped").value)
  end)

  it("keeps the classic series too with scrape_classic_histograms", function()
    local rec = scrape_until(tgt(target_addr), "scrape_native_histograms = true, scrape_classic_histograms = true,",
      function(r)
        return find(r.histograms, "latency_seconds") and find(r.samples, "up")
      end, "histograms")
    local counts = {}
    for _, s in ipairs(rec.samples) do
      if s.labels.__name__ == "latency_seconds_bucket" then
        counts[s.labels.le] = s.value
      end
    end
    assert.same({ ["0.1"] = 4, ["0.5"] = 7, ["1.0"] = 8, ["5.0"] = 10, ["+Inf"] = 12 }, counts)
    assert.equals(12, find(rec.samples, "latency_seconds_count").value)
  end)

  it("reduces the resolution to native_histogram_bucket_limit, the count and sum kept", function()
    local rec = scrape_until(tgt(target_addr), "scrape_native_histograms = true, native_histogram_bucket_limit = 4,",
      function(r)
        return find(r.histograms, "latency_seconds")
      end, "histograms")
    local h = find(rec.histograms, "latency_seconds")
    local n, total = 0, h.zero_count
    for _, c in pairs(buckets(h)) do
      n = n + 1
      total = total + c
    end
    assert.is_true(n <= 4)
    assert.equals(#LATENCY, total)
    assert.equals(#LATENCY, h.count)
    local want = expected_buckets(LATENCY, h.schema, h.zero_threshold)
    assert.same(want, buckets(h))
  end)

  it("fails a scrape whose histogram is over native_histogram_bucket_limit even at schema -4, and counts it", function()
    local rec, info = scrape_until(tgt(target_addr), "scrape_native_histograms = true, native_histogram_bucket_limit = 1,",
      function(r)
        return find(r.samples, "up")
      end, "up")
    assert.equals(0, find(rec.samples, "up").value)
    assert.is_nil(find(rec.histograms, "latency_seconds"))
    assert.equals("histogram bucket limit exceeded", info.last_error)
    local text = require("moonwatch.metrics").default:expose("text/plain")
    assert.matches('\nprometheus_target_scrapes_exceeded_native_histogram_bucket_limit_total'
      .. '{component_id="prometheus.scrape.s"} [1-9]', text)
  end)

  it("converts classic histograms to custom-bucket ones with convert_classic_histograms_to_nhcb", function()
    local rec = scrape_until(tgt(target_addr), 'scrape_protocols = { "PrometheusProto" }, '
      .. "convert_classic_histograms_to_nhcb = true,", function(r)
        return find(r.histograms, "latency_seconds") and find(r.samples, "up")
      end, "histograms")
    local h = find(rec.histograms, "latency_seconds")
    assert.equals(-53, h.schema)
    assert.same({ 0.1, 0.5, 1, 5 }, h.custom_values)
    assert.equals(12, h.count)
    assert.same({ p0 = 4, p1 = 3, p2 = 1, p3 = 2, p4 = 2 }, buckets(h))
    assert.is_nil(find(rec.samples, "latency_seconds_bucket"))
    -- the same from the text format
    rec = scrape_until(tgt(target_addr), 'scrape_protocols = { "PrometheusText0.0.4" }, '
      .. "convert_classic_histograms_to_nhcb = true,", function(r)
        return find(r.histograms, "latency_seconds") and find(r.samples, "up")
      end, "histograms")
    local t = find(rec.histograms, "latency_seconds")
    assert.same(h.custom_values, t.custom_values)
    assert.same(buckets(h), buckets(t))
    assert.near(h.sum, t.sum, 1e-12)
    assert.is_nil(find(rec.samples, "latency_seconds_bucket"))
    assert.is_nil(find(rec.samples, "latency_seconds_count"))
  end)

  it("forwards a batch that holds only native histograms", function()
    local only = {}
    for _, f in ipairs(families(pb_body)) do
      if f:find("latency_seconds", 1, true) then
        only[#only + 1] = f
      end
    end
    pb_served = table.concat(only)
    local rec = scrape_until(tgt(base, "/proto"), "scrape_native_histograms = true,", function(r)
      return find(r.samples, "up")
    end, "up")
    assert.equals(1, find(rec.samples, "up").value)
    assert.truthy(find(rec.histograms, "latency_seconds"), "the histogram-only batch was not forwarded")
  end)

  it("marks a histogram series that goes stale with a histogram staleness marker", function()
    local kept = {}
    for _, f in ipairs(families(pb_body)) do
      if not f:find("latency_seconds", 1, true) then
        kept[#kept + 1] = f
      end
    end
    local ctrl, rec = pipeline(tgt(base, "/proto"), "scrape_native_histograms = true,")
    assert(loop.run_until(function()
      return find(rec.histograms, "latency_seconds")
    end, 10))
    pb_served = table.concat(kept)
    local ok = loop.run_until(function()
      return find(rec.histograms, "latency_seconds", function(h)
        return h.stale
      end)
    end, 10)
    ctrl:stop()
    assert.truthy(ok, "no staleness marker for latency_seconds")
    assert.is_nil(find(rec.samples, "latency_seconds", function(s)
      return s.stale
    end)) -- not a float marker
  end)
end)
