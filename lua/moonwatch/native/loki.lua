--- moonwatch.native.loki: loki.write's C half from Lua: the logs queue
--- (runtime/storage/logs_queue.c), its endpoint readers that read push requests out of it
--- (runtime/loki/reader.c), and Loki push decoding and label strings (runtime/loki/push.c) for
--- receivers and tests. Handles are freed by the GC or by close(); methods return `value` or
--- `nil, err`. Event loop thread only.
local ffi = require("ffi")
local C = require("moonwatch.ffi").C
local common = require("moonwatch.native.common")

local M = {}

local ERRLEN, errbuf, err, check = common.ERRLEN, common.errbuf, common.err, common.check

local Queue = {}
Queue.__index = Queue
local Reader = {}
Reader.__index = Reader

--- Opens (creating it) the logs queue in dir/queue with cursors in dir; replays and repairs it.
--- opts: fsync ("never", "interval", "always"), segment_size (bytes; 0: 16 MiB).
---@return table|nil queue, string|nil err
function M.open_queue(dir, opts)
  opts = opts or {}
  local fsync, ferr = common.fsync_policy(opts.fsync, "fsync")
  if not fsync then
    return nil, ferr
  end
  local out = ffi.new("mw_logq_t *[1]")
  if C.mw_ffi_logq_open(dir, fsync, opts.segment_size or 0, out, errbuf, ERRLEN) ~= 0 then
    return nil, err()
  end
  return setmetatable({ h = ffi.gc(out[0], C.mw_ffi_logq_close), st = ffi.new("mw_logq_stats_t") }, Queue)
end

function Queue:close()
  common.close(self, C.mw_ffi_logq_close)
end

--- Appends a log-entry batch (written before it returns). true; nil, err, written (true when
--- the entries are in the queue but their fsync failed).
function Queue:append(b, now_ms)
  local rc = C.mw_ffi_logq_append(self.h, b, now_ms, errbuf, ERRLEN)
  if rc == 0 then
    return true
  end
  return nil, err(), rc == 1
end

--- Removes what every reader sent, what waited longer than max_age_ms (0: no bound) and the
--- oldest while over max_bytes (0: no bound).
function Queue:truncate(now_ms, max_age_ms, max_bytes)
  return check(C.mw_ffi_logq_truncate(self.h, now_ms, max_age_ms, max_bytes, errbuf, ERRLEN))
end

function Queue:sync_start()
  return check(C.mw_ffi_logq_sync_start(self.h, errbuf, ERRLEN))
end

--- The queue's counters (mw_logq_stats_t cdata, refreshed in place).
function Queue:stats()
  C.mw_ffi_logq_stats(self.h, self.st)
  return self.st
end

function Queue:repair_log()
  return ffi.string(C.mw_ffi_logq_repair_log(self.h))
end

--- A reader of the queue with its own cursor (cursor.NAME).
---@return table|nil reader, string|nil err
function Queue:reader(name)
  local out = ffi.new("mw_lokireader_t *[1]")
  if C.mw_ffi_lokireader_open(self.h, name, out, errbuf, ERRLEN) ~= 0 then
    return nil, err()
  end
  return setmetatable({ h = ffi.gc(out[0], C.mw_ffi_lokireader_close), queue = self,
    opts = ffi.new("mw_lokireq_opts_t"), req = ffi.new("mw_lokireq_t"), part = ffi.new("mw_lokipart_t"),
    st = ffi.new("mw_lokireader_stats_t") },
    Reader)
end

function Reader:close()
  common.close(self, C.mw_ffi_lokireader_close)
end

--- Request options: batch_size (bytes), max_streams (0: none), external_labels (encoded pairs),
--- encoding ("protobuf": snappy-compressed PushRequest, the default; "json": Loki's JSON body).
function Reader:configure(batch_size, max_streams, external_labels, encoding)
  self.ext = external_labels -- kept referenced: the options point at it
  self.opts.raw = encoding == "json" and 2 or 0
  self.opts.batch_size = batch_size
  self.opts.max_streams = max_streams
  self.opts.external_labels = external_labels
  self.opts.external_labels_len = #external_labels
end

--- The next read: { parts, entries, bytes, streams, full (ended by batch_size, max_streams or
--- one tenant too many: more follows), min_ts, max_ts, body, tenant (parts[1]'s) }: parts the
--- requests, one per tenant, each { body (a Lua string), entries, bytes, streams, tenant (the
--- entries' __tenant_id__ label, taken out of their labels; nil: none) }; the counts are their
--- sums. false when nothing is left to read, or nil, err.
function Reader:next()
  local rc = C.mw_ffi_lokireader_next(self.h, self.opts, self.req, errbuf, ERRLEN)
  if rc < 0 then
    return nil, err()
  elseif rc == 0 then
    return false
  end
  local r = self.req
  local parts = {}
  for i = 0, r.parts - 1 do
    assert(C.mw_ffi_lokireader_part(self.h, i, self.part) == 0)
    local p = self.part
    parts[i + 1] = { body = ffi.string(p.body, p.body_len), entries = tonumber(p.entries), bytes = tonumber(p.bytes),
      streams = p.streams, tenant = p.tenant_len > 0 and ffi.string(p.tenant, p.tenant_len) or nil }
  end
  return { body = parts[1].body, entries = tonumber(r.entries), bytes = tonumber(r.bytes),
    streams = r.streams, full = r.full == 1, min_ts = tonumber(r.min_ts_ns) / 1e9, max_ts = tonumber(r.max_ts_ns) / 1e9,
    tenant = parts[1].tenant, parts = parts }
end

function Reader:commit()
  return check(C.mw_ffi_lokireader_commit(self.h, errbuf, ERRLEN))
end

function Reader:rewind()
  C.mw_ffi_lokireader_rewind(self.h)
end

function Reader:stats()
  C.mw_ffi_lokireader_stats(self.h, self.st)
  return self.st
end

function Reader:note()
  return ffi.string(C.mw_ffi_lokireader_note(self.h))
end

-- Encoded pairs (name 0xFF value 0xFF ...) -> { {name, value}, ... } in order.
local posp, np, vp = ffi.new("size_t[1]"), ffi.new("const char *[1]"), ffi.new("const char *[1]")
local nlp, vlp = ffi.new("size_t[1]"), ffi.new("size_t[1]")
local function pairs_list(enc, len)
  local out = {}
  posp[0] = 0
  while C.mw_ffi_labels_next(enc, len, posp, np, nlp, vp, vlp) == 1 do
    out[#out + 1] = { ffi.string(np[0], nlp[0]), ffi.string(vp[0], vlp[0]) }
  end
  return out
end

--- Parses a stream label string as Loki does: a list of { name, value } sorted by name
--- (duplicates kept), or nil, err.
function M.parse_labels(s)
  local out, len = ffi.new("uint8_t *[1]"), ffi.new("size_t[1]")
  local rc = C.mw_ffi_loki_labels_parse(s, #s, out, len, errbuf, ERRLEN)
  if rc ~= 0 then
    return nil, rc == -2 and "out of memory" or err()
  end
  local list = pairs_list(out[0], len[0])
  C.mw_ffi_loki_free(out[0])
  return list
end

--- The label string {a="b", c="d"} of a { name = value } table (names sorted, values quoted as Go).
function M.format_labels(t)
  local enc = common.encode_pairs(t)
  local out, len = ffi.new("char *[1]"), ffi.new("size_t[1]")
  if C.mw_ffi_loki_labels_format(enc, #enc, out, len) ~= 0 then
    error("out of memory", 2)
  end
  local s = ffi.string(out[0], len[0])
  C.mw_ffi_loki_free(out[0])
  return s
end

--- s compressed as a snappy block (for tests and tools that build push bodies by hand).
function M.snappy(s)
  local out, len = ffi.new("char *[1]"), ffi.new("size_t[1]")
  if C.mw_ffi_loki_snappy(s, #s, out, len) ~= 0 then
    error("out of memory", 2)
  end
  local r = ffi.string(out[0], len[0])
  C.mw_ffi_loki_free(out[0])
  return r
end

--- How many streams and entries a push body holds (snappy-compressed when compressed), decoded
--- but not copied into Lua; or nil, err.
function M.count_push(body, compressed)
  local out = ffi.new("mw_lokidec_t *[1]")
  if C.mw_ffi_lokidec_new(body, #body, compressed and 1 or 0, out, errbuf, ERRLEN) ~= 0 then
    return nil, err()
  end
  local lp, ll, ne = ffi.new("const char *[1]"), ffi.new("size_t[1]"), ffi.new("size_t[1]")
  local ns, n = tonumber(C.mw_ffi_lokidec_streams(out[0])), 0
  for i = 0, ns - 1 do
    C.mw_ffi_lokidec_stream(out[0], i, lp, ll, ne)
    n = n + tonumber(ne[0])
  end
  C.mw_ffi_lokidec_free(out[0])
  return n, ns
end

--- Decodes a push body (snappy-compressed when compressed): a list of streams
--- { labels = "{...}", entries = { { ts = ns (number), sec, nsec, line, metadata = {{n, v}...} } } },
--- or nil, err.
function M.decode_push(body, compressed)
  local out = ffi.new("mw_lokidec_t *[1]")
  if C.mw_ffi_lokidec_new(body, #body, compressed and 1 or 0, out, errbuf, ERRLEN) ~= 0 then
    return nil, err()
  end
  local d = ffi.gc(out[0], C.mw_ffi_lokidec_free)
  local lp, ll, ne = ffi.new("const char *[1]"), ffi.new("size_t[1]"), ffi.new("size_t[1]")
  local ts, line, len = ffi.new("int64_t[1]"), ffi.new("const char *[1]"), ffi.new("size_t[1]")
  local meta, mlen = ffi.new("const uint8_t *[1]"), ffi.new("size_t[1]")
  local streams = {}
  for i = 0, tonumber(C.mw_ffi_lokidec_streams(d)) - 1 do
    C.mw_ffi_lokidec_stream(d, i, lp, ll, ne)
    local s = { labels = ffi.string(lp[0], ll[0]), entries = {} }
    for j = 0, tonumber(ne[0]) - 1 do
      if C.mw_ffi_lokidec_entry(d, i, j, ts, line, len, meta, mlen) ~= 0 then
        return nil, "out of memory"
      end
      local t = ts[0]
      local sec = t / 1000000000
      local nsec = t - sec * 1000000000
      if nsec < 0 then
        sec, nsec = sec - 1, nsec + 1000000000
      end
      s.entries[j + 1] = { sec = tonumber(sec), nsec = tonumber(nsec), line = ffi.string(line[0], len[0]),
        metadata = pairs_list(meta[0], mlen[0]) }
    end
    streams[i + 1] = s
  end
  ffi.gc(d, nil)
  C.mw_ffi_lokidec_free(d)
  return streams
end

return M
