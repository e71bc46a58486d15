-- moonwatch.tracing, the span batch and the OTLP codec inside the VM: TraceIdRatioBased
-- decisions, NOOP spans when tracing is off (nothing made), the encoder/decoder pair, what
-- the decoder refuses as the Collector does, the gRPC frame and status classification.
package.path = (os.getenv("MOONWATCH_SOURCE_DIR") or ".") .. "/stdlib/?.lua;" .. package.path
local ffi = require("ffi")
local C = require("moonwatch.ffi").C
local tracing = require("moonwatch.tracing")
local traces = require("moonwatch.batch.traces")
local otlp = require("moonwatch.native.otlp")
local cjson = require("cjson")

-- a 16-byte trace id whose last 8 bytes are the big-endian u64 hi * 2^32 + lo
local function tid(hi, lo)
  local b = {}
  for i = 1, 8 do
    b[i] = 0xAB
  end
  for i = 0, 3 do
    b[9 + i] = math.floor(hi / 2 ^ (8 * (3 - i))) % 256
    b[13 + i] = math.floor(lo / 2 ^ (8 * (3 - i))) % 256
  end
  return ffi.new("uint8_t[16]", b)
end

-- protobuf: a length-delimited field (lengths < 128 here)
local function field(n, bytes)
  assert(#bytes < 128)
  return string.char(n * 8 + 2, #bytes) .. bytes
end

local function request_with_ids(trace_id, span_id)
  local span = field(1, trace_id) .. field(2, span_id) .. field(5, "s")
  return field(1, field(2, field(2, span)))
end

describe("tracing", function()
  after_each(function()
    tracing.configure({ sampling_fraction = 0.1, write_to = {} })
  end)

  it("samples a trace id as OpenTelemetry's TraceIdRatioBased: (last 8 bytes >> 1) < fraction * 2^63", function()
    -- fraction 0.5: bound 2^62; x >> 1 < 2^62 <=> x < 2^63
    assert.equals(1, C.mw_ffi_trace_sampled(tid(0x7FFFFFFF, 0xFFFFFFFF), 0.5))
    assert.equals(0, C.mw_ffi_trace_sampled(tid(0x80000000, 0), 0.5))
    assert.equals(1, C.mw_ffi_trace_sampled(tid(0, 1), 0.25))
    assert.equals(0, C.mw_ffi_trace_sampled(tid(0x40000000, 0), 0.25))
    assert.equals(0, C.mw_ffi_trace_sampled(tid(0, 0), 0))
    assert.equals(0, C.mw_ffi_trace_sampled(tid(0, 0), -1))
    assert.equals(1, C.mw_ffi_trace_sampled(tid(0xFFFFFFFF, 0xFFFFFFFF), 1))
    assert.equals(1, C.mw_ffi_trace_sampled(tid(0xFFFFFFFF, 0xFFFFFFFF), 7))
    -- random ids at 0.3: about 30% of 20,000 kept
    local buf, kept = ffi.new("uint8_t[16]"), 0
    for _ = 1, 20000 do
      C.mw_ffi_trace_random(buf, 16)
      kept = kept + C.mw_ffi_trace_sampled(buf, 0.3)
    end
    assert.is_true(kept > 5400 and kept < 6600, tostring(kept))
  end)

  it("makes nothing while off (sampling_fraction 0 or no write_to): start returns the one NOOP span", function()
    local got = {}
    local sink = require("moonwatch.receiver").traces("t", function(_, b)
      got[#got + 1] = traces.len(b)
    end)
    for _, args in ipairs({ { sampling_fraction = 0, write_to = { sink } }, { sampling_fraction = 1, write_to = {} } }) do
      tracing.configure(args)
      assert.is_false(tracing.enabled())
      collectgarbage()
      collectgarbage("stop")
      local before = collectgarbage("count")
      for _ = 1, 10000 do
        local span = tracing.start("prometheus.scrape", nil, tracing.CLIENT)
        span:set("samples_scraped", 12)
        span:finish(nil)
        assert(span == tracing.NOOP)
      end
      local grown = collectgarbage("count") - before
      collectgarbage("restart")
      assert.is_true(grown < 4, string.format("%.1f KiB allocated for 10,000 spans while off", grown))
    end
    tracing.flush()
    assert.same({}, got)
  end)

  it("sends the finished spans of sampled traces, children under their root, in a batch", function()
    local spans
    local sink = require("moonwatch.receiver").traces("t", function(_, b)
      spans = {}
      for _, s in traces.spans(b) do
        spans[#spans + 1] = s
      end
      spans.resource = traces.resource_attributes(b)
    end)
    tracing.configure({ sampling_fraction = 1, write_to = { sink } })
    local root = tracing.start("GraphEvaluate")
    local child = tracing.start("EvaluateNode", root)
    child:set("node_id", "a.b.c")
    child:finish()
    root:finish("boom")
    assert.truthy(root:traceparent():match("^00%-" .. string.rep("%x", 32) .. "%-" .. string.rep("%x", 16) .. "%-01$"))
    tracing.flush()
    assert.equals(2, #spans)
    assert.equals("moonwatch", spans.resource["service.name"])
    local c, r = spans[1], spans[2]
    assert.equals("EvaluateNode", c.name)
    assert.equals(r.trace_id, c.trace_id)
    assert.equals(r.span_id, c.parent_span_id)
    assert.is_nil(r.parent_span_id)
    assert.equals("a.b.c", c.attributes.node_id)
    assert.equals(2, r.status_code)
    assert.equals("boom", r.status_message)
  end)

  it("never sends a secret: URL passwords and Authorization values masked in attributes and status", function()
    local spans
    local sink = require("moonwatch.receiver").traces("t", function(_, b)
      spans = {}
      for _, s in traces.spans(b) do
        spans[#spans + 1] = s
      end
    end)
    tracing.configure({ sampling_fraction = 1, write_to = { sink } })
    local span = tracing.start("prometheus.scrape")
    span:set("url.full", "http://admin:hunter2@10.0.0.1:9100/metrics")
    span:set("samples_scraped", 12)
    span:finish('Get "https://u:hunter2@h/x": Authorization: Bearer hunter2tok')
    tracing.flush()
    assert.equals(1, #spans)
    local s = spans[1]
    assert.equals("http://admin:xxxxx@10.0.0.1:9100/metrics", s.attributes["url.full"])
    assert.equals(12, s.attributes.samples_scraped)
    assert.is_nil(s.status_message:find("hunter2", 1, true), s.status_message)
  end)

  it("leaves the batch as it was when a span is refused for one of its attributes", function()
    local b = traces.new()
    traces.resource(b, "service.name", "t")
    assert(traces.add(b, { trace_id = string.rep("\1", 16), span_id = string.rep("\2", 8), name = "kept",
      start_ns = 1, end_ns = 2, attributes = { "a", 1 } }))
    local ok, err = traces.add(b, { trace_id = string.rep("\1", 16), span_id = string.rep("\3", 8), name = "big",
      start_ns = 1, end_ns = 2, attributes = { "small", "x", "huge", string.rep("x", 2 * 1024 * 1024) } })
    assert.is_nil(ok)
    assert.matches("huge", err)
    assert.equals(1, traces.len(b))
    local got = {}
    for _, s in traces.spans(b) do
      got[#got + 1] = s
    end
    assert.equals("kept", got[1].name)
    assert.same({ a = 1 }, got[1].attributes)
    -- and a span added next is whole
    assert(traces.add(b, { trace_id = string.rep("\1", 16), span_id = string.rep("\4", 8), name = "next",
      start_ns = 1, end_ns = 2, attributes = { "b", true } }))
    got = {}
    for _, s in traces.spans(b) do
      got[#got + 1] = s
    end
    assert.equals(2, #got)
    assert.same({ b = true }, got[2].attributes)
    assert.equals("t", traces.resource_attributes(b)["service.name"])
  end)

  it("decodes what it encodes, and refuses ids of the wrong length as the Collector's receiver", function()
    local b = traces.new()
    traces.resource(b, "service.name", "moonwatch")
    assert(traces.add(b, { trace_id = string.rep("\1", 16), span_id = string.rep("\2", 8), name = "n\"\n",
      kind = 3, start_ns = 5, end_ns = 9, attributes = { "i", -3, "d", 0.25, "b", false, "s", "x" } }))
    local pb = assert(otlp.encode(b, "moonwatch", "1"))
    local doc = cjson.decode((assert(otlp.decode(pb))))
    local s = doc.resource_spans[1].scope_spans[1].spans[1]
    assert.equals("n\"\n", s.name)
    assert.same({ i = -3, d = 0.25, b = false, s = "x" }, s.attributes)
    assert.equals("5", s.start)
    assert.equals(1, doc.spans)
    local json = cjson.decode((assert(otlp.encode(b, "moonwatch", "1", true))))
    assert.equals("01010101010101010101010101010101", json.resourceSpans[1].scopeSpans[1].spans[1].traceId)
    assert.equals("-3", json.resourceSpans[1].scopeSpans[1].spans[1].attributes[1].value.intValue)

    assert.truthy(otlp.decode(request_with_ids(string.rep("\1", 16), string.rep("\2", 8))))
    local _, err = otlp.decode(request_with_ids(string.rep("\1", 15), string.rep("\2", 8)))
    assert.truthy(err:find("invalid length for ID", 1, true), err)
    _, err = otlp.decode(request_with_ids(string.rep("\1", 16), string.rep("\2", 9)))
    assert.truthy(err:find("invalid length for ID", 1, true), err)
    _, err = otlp.decode("\10\200")
    assert.truthy(err:find("invalid wire-format", 1, true), err)
    assert.is_nil(traces.add(b, { trace_id = string.rep("\0", 16), span_id = string.rep("\2", 8), name = "z",
      start_ns = 1, end_ns = 2 }))
  end)

  it("frames gRPC messages and reads grpc-status as exporterhelper retries it", function()
    local otlp_grpc = require("otelcol.exporter.otlp")
    assert.equals("\1\0\0\1\3" .. string.rep("x", 259), otlp_grpc.frame(string.rep("x", 259), true))
    local function classify(status, headers)
      return otlp_grpc.classify({ status = status, headers = headers })
    end
    assert.equals("sent", classify(200, { ["grpc-status"] = "0" }))
    local outcome, why = classify(200, { ["grpc-status"] = "14", ["grpc-message"] = "down%20for%20now" })
    assert.equals("retry", outcome)
    assert.equals("rpc error: code = UNAVAILABLE desc = down for now", why)
    assert.equals("permanent", (classify(200, { ["grpc-status"] = "3" })))
    assert.equals("permanent", (classify(200, { ["grpc-status"] = "8" })))
    assert.equals("retry", (classify(200, { ["grpc-status"] = "4" })))
    assert.equals("retry", (classify(503, {})))
    assert.equals("permanent", (classify(200, {})))
    assert.equals("permanent", (classify(404, {})))
    -- as grpc-go: an HTTP status other than 200 is an error, even with a grpc-status of 0
    assert.equals("retry", (classify(503, { ["grpc-status"] = "0" })))
    outcome, why = classify(500, { ["grpc-status"] = "0" })
    assert.equals("permanent", outcome)
    assert.equals("rpc error: code = UNKNOWN desc = HTTP status 500", why)
  end)
end)
