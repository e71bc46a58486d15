--- moonwatch.batch.logs: the log-entry batch (logs) as Lua sees it, what logs receivers
-- (moonwatch.receiver.logs) get. A log-entry batch (mw_logbatch_t cdata,
-- runtime/model/logbatch.h) holds entries shaped as in Loki's push API:
--   stream    its stream: a label set { name = value }, kept once per batch
--   ts        timestamp in nanoseconds since the epoch (int64 cdata; sec and nsec below
--             give it as two Lua numbers, exactly)
--   line      the log line: bytes (a Lua string, any bytes, no trailing newline added)
--   metadata  structured metadata: { name = value } (not part of the stream's identity)
-- As every batch, it is valid only during the receiver's append(batch): copy what you keep.
-- These accessors are the slow path for Lua components (a table per entry); C components
-- (loki.write) take the whole batch in one call.
--
--   local logs = require("moonwatch.batch.logs")
--   local b = logs.new()
--   logs.add(b, { job = "app" }, 1700000000, 123456789, "GET / 200", { trace_id = "abc" })
--   for i, e in logs.entries(b) do print(i, e.labels.job, e.sec, e.nsec, e.line) end
local ffi = require("ffi")
local C = require("moonwatch.ffi").C
local common = require("moonwatch.native.common")

local M = {}

local errbuf = ffi.new("char[256]")
local lenp, posp = ffi.new("size_t[1]"), ffi.new("size_t[1]")
local np, vp = ffi.new("const char *[1]"), ffi.new("const char *[1]")
local nlp, vlp = ffi.new("size_t[1]"), ffi.new("size_t[1]")
local ent = ffi.new("mw_logentry_t")
local NS = ffi.new("int64_t", 1000000000)

--- A new, empty log-entry batch (freed by the garbage collector).
---@return ffi.cdata*
function M.new()
  local b = C.mw_ffi_logbatch_new()
  if b == nil then
    error("out of memory", 2)
  end
  return ffi.gc(b, C.mw_ffi_logbatch_free)
end

--- Empties b (for reuse by its producer; it keeps its memory).
function M.reset(b)
  C.mw_ffi_logbatch_reset(b)
end

-- A { name = value } table as name 0xFF value 0xFF pairs, names sorted (deterministic).
local function pairs_of(t, what)
  if type(t) ~= "table" then
    error(what .. ": expected a table of name = value, got " .. type(t), 3)
  end
  for k, v in pairs(t) do
    if type(k) ~= "string" or type(v) ~= "string" then
      error(string.format("%s: names and values must be strings (%s = %s)", what, tostring(k),
        type(v)), 3)
    end
  end
  return common.encode_pairs(t)
end

--- The index of the stream with label set labels in b, added if new. Raises on bad labels.
---@param labels table<string, string>
---@return integer
function M.stream(b, labels)
  local enc = pairs_of(labels, "labels")
  local s = C.mw_ffi_logbatch_stream(b, enc, #enc, errbuf, 256)
  if s < 0 then
    error("labels: " .. ffi.string(errbuf), 2)
  end
  return tonumber(s)
end

--- Appends an entry: stream is a label table or an index from M.stream; ts is given as
--- seconds and nanoseconds (0 to 999999999) since the epoch.
---@param stream table<string, string>|integer
---@param sec integer
---@param nsec integer
---@param line string
---@param metadata table<string, string>|nil structured metadata
function M.add(b, stream, sec, nsec, line, metadata)
  if type(stream) == "table" then
    stream = M.stream(b, stream)
  elseif type(stream) ~= "number" or stream < 0 or stream >= tonumber(C.mw_ffi_logbatch_streams(b)) then
    error("stream: expected a label table or a stream index of this batch, got " .. tostring(stream), 2)
  end
  if type(line) ~= "string" then
    error("line: expected a string, got " .. type(line), 2)
  end
  if type(sec) ~= "number" or type(nsec) ~= "number" or nsec < 0 or nsec > 999999999 or nsec % 1 ~= 0
    or sec % 1 ~= 0 then
    error("timestamp: expected whole seconds and nanoseconds in [0, 999999999]", 2)
  end
  local meta = metadata and pairs_of(metadata, "metadata") or ""
  if C.mw_ffi_logbatch_add(b, stream, NS * sec + nsec, line, #line, meta, #meta) ~= 0 then
    error("line: too long (over 64 MiB) or out of memory", 2)
  end
end

--- Number of entries.
function M.len(b)
  return tonumber(C.mw_ffi_logbatch_len(b))
end

--- Number of streams.
function M.streams(b)
  return tonumber(C.mw_ffi_logbatch_streams(b))
end

--- Sum of the entries' line lengths in bytes.
function M.bytes(b)
  return tonumber(C.mw_ffi_logbatch_bytes(b))
end

local function decode(enc, len)
  local out = {}
  posp[0] = 0
  while C.mw_ffi_labels_next(enc, len, posp, np, nlp, vp, vlp) == 1 do
    out[ffi.string(np[0], nlp[0])] = ffi.string(vp[0], vlp[0])
  end
  return out
end

--- The label set of stream s (0-based) as { name = value }.
function M.stream_labels(b, s)
  local enc = C.mw_ffi_logbatch_stream_labels(b, s, lenp)
  if enc == nil then
    error("stream " .. tostring(s) .. " out of range", 2)
  end
  return decode(enc, lenp[0])
end

-- Entry i into a table; labels from cache (stream -> table) when given.
local function entry(b, i, cache)
  if C.mw_ffi_logbatch_entry(b, i, ent) ~= 0 then
    error("entry " .. tostring(i) .. " out of range", 3)
  end
  local s = tonumber(ent.stream)
  local labels = cache and cache[s]
  if not labels then
    labels = M.stream_labels(b, s)
    if cache then
      cache[s] = labels
    end
  end
  local ts = ent.ts_ns
  local sec = ts / NS
  local nsec = ts - sec * NS
  if nsec < 0 then
    sec, nsec = sec - 1, nsec + NS
  end
  return {
    stream = s,
    labels = labels,
    ts = ts,
    sec = tonumber(sec),
    nsec = tonumber(nsec),
    line = ffi.string(ent.line, ent.line_len),
    metadata = decode(ent.meta, ent.meta_len),
  }
end

--- Entry i (0-based) as { stream, labels, ts (int64 ns), sec, nsec, line, metadata }.
function M.entry(b, i)
  return entry(b, i, nil)
end

--- The timestamp of entry e in nanoseconds, as a Lua number (exact to ~0.25 µs today).
---@param e table
---@return number
function M.ts_ns(e)
  return e.sec * 1e9 + e.nsec
end

--- Entry i (0-based) as M.entry gives it, the labels of its stream taken from (and kept in)
--- cache, a table the caller keeps for one batch: the entries of a stream then share one
--- labels table (do not change it). For loops that must not make a closure per batch (the
--- JIT does not compile one): local cache = {}; for i = 0, M.len(b) - 1 do ... M.entry_of(b, i, cache).
function M.entry_of(b, i, cache)
  return entry(b, i, cache)
end

--- Iterates the entries: for i, e in M.entries(b) (i from 0; e as M.entry gives it; entries
--- of one stream share one labels table: do not change it).
function M.entries(b)
  local n, i, cache = M.len(b), -1, {}
  return function()
    i = i + 1
    if i >= n then
      return nil
    end
    return i, entry(b, i, cache)
  end
end

return M
