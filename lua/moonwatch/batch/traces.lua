--- moonwatch.batch.traces: the span batch (traces) as Lua sees it, what trace receivers
-- (moonwatch.receiver.traces; Alloy's otelcol.Consumer `input`) get. A span batch
-- (mw_spanbatch_t cdata, runtime/model/spanbatch.h) holds the spans of one resource:
--   resource  { key = value } of the process that made them (service.name, ...)
--   spans     trace_id (16 bytes), span_id (8), parent_span_id (8, or "" for a root), name,
--             kind (OTLP SpanKind), start_ns and end_ns (int64 cdata), status_code (0 unset,
--             1 ok, 2 error), status_message, attributes { key = string|number|boolean }
-- As every batch, it is valid only during the receiver's append(batch): copy what you keep.
-- The accessors here are the slow path for Lua components (a table per span); exporters
-- encode the whole batch in C (moonwatch.native.otlp).
local ffi = require("ffi")
local C = require("moonwatch.ffi").C

local M = {}

local span = ffi.new("mw_span_t")
local attr = ffi.new("mw_spanattr_t")
local ZERO8 = string.rep("\0", 8)

--- A new, empty span batch (freed by the garbage collector).
---@return ffi.cdata*
function M.new()
  local b = C.mw_ffi_spanbatch_new()
  if b == nil then
    error("out of memory", 2)
  end
  return ffi.gc(b, C.mw_ffi_spanbatch_free)
end

--- Empties b (for reuse by its producer).
function M.reset(b)
  C.mw_ffi_spanbatch_reset(b)
end

--- Adds a resource attribute (string).
function M.resource(b, key, value)
  value = tostring(value)
  if C.mw_ffi_spanbatch_resource(b, key, #key, value, #value) ~= 0 then
    error("span batch: resource attribute " .. key .. " refused (too long, or out of memory)", 2)
  end
end

local function add_attr(b, k, v)
  local t = type(v)
  local rc
  if t == "boolean" then
    rc = C.mw_ffi_spanbatch_attr_bool(b, k, #k, v and 1 or 0)
  elseif t == "number" then
    if v == math.floor(v) and v >= -2 ^ 53 and v <= 2 ^ 53 then
      rc = C.mw_ffi_spanbatch_attr_int(b, k, #k, v)
    else
      rc = C.mw_ffi_spanbatch_attr_double(b, k, #k, v)
    end
  else
    v = tostring(v)
    rc = C.mw_ffi_spanbatch_attr_str(b, k, #k, v, #v)
  end
  return rc == 0
end

--- Appends a span: s = { trace_id, span_id, parent_span_id|nil, name, kind, start_ns, end_ns,
--- status_code, status_message, attributes = { k, v, k, v, ... } (a flat list, in order) }.
--- true, or nil, err (ids of the wrong length or all zero, too long, out of memory: the span is
--- not added, b is as it was).
function M.add(b, s)
  if #s.trace_id ~= 16 or #s.span_id ~= 8 or (s.parent_span_id and #s.parent_span_id ~= 8) then
    return nil, "a span needs a 16-byte trace id and 8-byte span ids"
  end
  local msg = s.status_message or ""
  if C.mw_ffi_spanbatch_add(b, s.trace_id, s.span_id, s.parent_span_id, s.name, #s.name, s.kind or 1,
    s.start_ns, s.end_ns, s.status_code or 0, msg, #msg) ~= 0 then
    return nil, "span refused (all-zero id, too long, or out of memory)"
  end
  local a = s.attributes
  if a then
    for i = 1, #a, 2 do
      if not add_attr(b, a[i], a[i + 1]) then
        C.mw_ffi_spanbatch_pop(b) -- the span goes, not only its attributes after this one
        return nil, "span attribute " .. tostring(a[i]) .. " refused (too long, or out of memory)"
      end
    end
  end
  return true
end

--- Number of spans in b.
function M.len(b)
  return tonumber(C.mw_ffi_spanbatch_len(b))
end

local function attr_value(a)
  if a.type == C.MW_SPANATTR_STR then
    return ffi.string(a.str, a.str_len)
  elseif a.type == C.MW_SPANATTR_INT then
    return tonumber(a.i)
  elseif a.type == C.MW_SPANATTR_DOUBLE then
    return tonumber(a.d)
  end
  return a.i ~= 0
end

--- The resource attributes of b: { key = value }.
function M.resource_attributes(b)
  local out = {}
  for i = 0, tonumber(C.mw_ffi_spanbatch_resource_len(b)) - 1 do
    C.mw_ffi_spanbatch_resource_attr(b, i, attr)
    out[ffi.string(attr.key, attr.key_len)] = attr_value(attr)
  end
  return out
end

--- Iterates the spans of b: for i, s in traces.spans(b) (s as M.add takes it, attributes as
--- { key = value }).
function M.spans(b)
  local n, i = M.len(b), 0
  return function()
    if i >= n then
      return nil
    end
    C.mw_ffi_spanbatch_span(b, i, span)
    i = i + 1
    local parent = ffi.string(span.parent_span_id, 8)
    local s = {
      trace_id = ffi.string(span.trace_id, 16), span_id = ffi.string(span.span_id, 8),
      parent_span_id = parent ~= ZERO8 and parent or nil,
      name = ffi.string(span.name, span.name_len), kind = span.kind,
      start_ns = span.start_ns, end_ns = span.end_ns, status_code = span.status_code,
      status_message = ffi.string(span.status_message, span.status_message_len), attributes = {},
    }
    for k = span.attr_first, span.attr_first + span.attr_count - 1 do
      C.mw_ffi_spanbatch_attr(b, k, attr)
      s.attributes[ffi.string(attr.key, attr.key_len)] = attr_value(attr)
    end
    return i, s
  end
end

return M
