--- moonwatch.native.wal: the metrics WAL and its remote-write readers
--- (runtime/storage/metrics_wal.c, runtime/remote/wal_reader.c) from Lua.
-- A WAL is opened per component directory; batches are appended; each endpoint
-- reads it with its own reader (cursor) in spans of snappy-compressed
-- Remote-Write requests, one per shard, and commits a span once it is sent.
-- Handles are freed by the GC or by close(); methods return `value` or
-- `nil, err`. Event loop thread only.
local ffi = require("ffi")
local C = require("moonwatch.ffi").C
local common = require("moonwatch.native.common")

local M = {}

--- Most shards a span may be cut into.
M.MAX_SHARDS = C.MW_WAL_MAX_SHARDS

local ERRLEN, errbuf, err, check = common.ERRLEN, common.errbuf, common.err, common.check

local Wal = {}
Wal.__index = Wal
local Reader = {}
Reader.__index = Reader

--- Opens (creating it if missing) the WAL in dir/wal, replays it and repairs a torn or
--- corrupt tail (see repair_log). opts: fsync ("never" (default), "interval",
--- "always"), segment_size (bytes, 0: 128 MiB).
---@param dir string
---@param opts table|nil
---@return table|nil wal, string|nil err
function M.open(dir, opts)
  opts = opts or {}
  if type(dir) ~= "string" or dir == "" then
    return nil, "WAL directory must be a non-empty string"
  end
  local o = ffi.new("mw_wal_opts_t")
  local fsync, ferr = common.fsync_policy(opts.fsync, "WAL fsync")
  if not fsync then
    return nil, ferr
  end
  o.fsync = fsync
  o.segment_size = opts.segment_size or 0
  local out = ffi.new("mw_wal_t *[1]")
  if C.mw_ffi_wal_open(dir, o, out, errbuf, ERRLEN) ~= 0 then
    return nil, err()
  end
  return setmetatable({ h = ffi.gc(out[0], C.mw_ffi_wal_close), st = ffi.new("mw_wal_stats_t") }, Wal)
end

--- Closes the WAL now (readers still open keep its memory; their calls then fail).
function Wal:close()
  common.close(self, C.mw_ffi_wal_close)
end

local function open_wal(self)
  if not self.h then
    error("the WAL is closed", 3)
  end
  return self.h
end

--- What repairs at open found and did, one line each ("" if none).
function Wal:repair_log()
  return ffi.string(C.mw_ffi_wal_repair_log(open_wal(self)))
end

--- Appends every sample of batch b. true; or nil, err, written: written is true when
--- the batch is in the WAL but its fsync (fsync "always") failed, false when nothing
--- of it was written.
function Wal:append(b)
  local rc = C.mw_ffi_wal_append(open_wal(self), b, errbuf, ERRLEN)
  if rc == 0 then
    return true
  end
  return nil, err(), rc > 0
end

--- fsyncs what was appended, on this thread. true, or nil, err.
function Wal:sync()
  return check(C.mw_ffi_wal_sync(open_wal(self), errbuf, ERRLEN))
end

--- Starts an fsync on the worker thread (fsync "interval"); nil, err if the previous one failed.
function Wal:sync_start()
  return check(C.mw_ffi_wal_sync_start(open_wal(self), errbuf, ERRLEN))
end

--- Starts a new segment and removes old ones (see runtime/storage/wal.h). true, or nil, err.
function Wal:truncate(now_ms, min_keepalive_ms, max_keepalive_ms)
  return check(C.mw_ffi_wal_truncate(open_wal(self), now_ms, min_keepalive_ms, max_keepalive_ms, errbuf, ERRLEN))
end

--- The WAL's counters and gauges (a mw_wal_stats_t owned by the WAL object,
--- refreshed by each call).
function Wal:stats()
  C.mw_ffi_wal_stats(open_wal(self), self.st)
  return self.st
end

--- Opens the reader called name (letters, digits, '_', '-', '.') at its saved cursor.
--- external_labels: an encoded label set ("" or nil: none).
---@return table|nil reader, string|nil err
function Wal:reader(name, external_labels)
  local ext = external_labels or ""
  if type(name) ~= "string" or type(ext) ~= "string" then
    return nil, "WAL reader name and external labels must be strings"
  end
  local out = ffi.new("mw_wal_reader_t *[1]")
  if C.mw_ffi_wal_reader_open(open_wal(self), name, ext, #ext, out, errbuf, ERRLEN) ~= 0 then
    return nil, err()
  end
  return setmetatable({
    h = ffi.gc(out[0], C.mw_ffi_wal_reader_close), wal = self,
    st = ffi.new("mw_wal_reader_stats_t"), chunk = ffi.new("mw_wal_chunk_t"),
    bufp = ffi.new("const uint8_t *[1]"), lenp = ffi.new("size_t[1]"),
    ncap = 0, n = 0, -- bufs, lens and chunks hold ncap shards; the last span n
  }, Reader)
end

--- Closes the reader now (saving its cursor), not at garbage collection.
function Reader:close()
  common.close(self, C.mw_ffi_wal_reader_close)
end

local function open_reader(self)
  if not self.h then
    error("the WAL reader is closed", 3)
  end
  return self.h
end

--- What opening the reader found wrong with its cursor file ("" when nothing).
function Reader:note()
  return ffi.string(C.mw_ffi_wal_reader_note(open_reader(self)))
end

--- send_exemplars on (true) or off, from the next span.
function Reader:set_exemplars(on)
  C.mw_ffi_wal_reader_set_exemplars(open_reader(self), on and 1 or 0)
end

--- send_native_histograms on (true) or off (the default: histogram samples are skipped
--- and counted in histograms_dropped/histograms_unsent), from the next span.
function Reader:set_histograms(on)
  C.mw_ffi_wal_reader_set_histograms(open_reader(self), on and 1 or 0)
end

--- Sets the write relabeling (a program from moonwatch.native.relabel, nil: none),
--- kept alive with the reader. true, or nil, err.
function Reader:set_relabel(program)
  if C.mw_ffi_wal_reader_set_relabel(open_reader(self), program, errbuf, ERRLEN) ~= 0 then
    return nil, err()
  end
  self.program = program
  return true
end

--- Reads the next span cut into nshards requests of at most max_samples samples,
--- skipping samples older than min_ts (ms). true with a span (read its requests with
--- shard(k)), false when there is nothing new, nil, err on error.
function Reader:next_shards(nshards, max_samples, min_ts)
  local h = open_reader(self)
  if nshards < 1 or nshards > M.MAX_SHARDS then
    return nil, string.format("shards must be in [1, %d], got %s", M.MAX_SHARDS, tostring(nshards))
  end
  if nshards > self.ncap then
    self.bufs, self.lens = ffi.new("const uint8_t *[?]", nshards), ffi.new("size_t[?]", nshards)
    self.chunks, self.ncap = ffi.new("mw_wal_chunk_t[?]", nshards), nshards
  end
  self.n = 0
  local rc = C.mw_ffi_wal_reader_next_shards(h, nshards, max_samples, min_ts, self.bufs, self.lens, self.chunks,
    errbuf, ERRLEN)
  if rc < 0 then
    return nil, err()
  end
  if rc == 0 then
    return false
  end
  self.n = nshards
  return true
end

--- The span's seq (commit it once all its requests are done).
function Reader:span_seq()
  return self.chunks[0].seq
end

--- Request k (0-based) of the last span: body (a string), samples, exemplars, min_ts,
--- max_ts (ms), histograms (native histogram samples); nil for an empty shard.
function Reader:shard(k)
  if k < 0 or k >= self.n then
    error("shard index out of range", 2)
  end
  local c = self.chunks[k]
  if c.samples == 0 and c.exemplars == 0 and c.histograms == 0 then
    return nil
  end
  return ffi.string(self.bufs[k], self.lens[k]), c.samples, c.exemplars, tonumber(c.min_ts), tonumber(c.max_ts),
    c.histograms
end

--- Before a retry of a request of span seq (body as last sent): takes out samples and
--- exemplars older than min_ts. Returns the number taken out and, when it is above 0,
--- the new body ("" when nothing is left: no send needed), samples, exemplars, min_ts,
--- max_ts, histograms; or nil, err (then send the request as it was).
function Reader:drop_old(seq, body, min_ts)
  local d = C.mw_ffi_wal_reader_drop_old(open_reader(self), seq, body, #body, min_ts, self.bufp, self.lenp,
    self.chunk, errbuf, ERRLEN)
  if d < 0 then
    return nil, err()
  end
  if d == 0 then
    return 0
  end
  local c = self.chunk
  local out = self.lenp[0] > 0 and ffi.string(self.bufp[0], self.lenp[0]) or ""
  return d, out, c.samples, c.exemplars, tonumber(c.min_ts), tonumber(c.max_ts), c.histograms
end

--- The remote end took span seq: the saved cursor moves past every span committed
--- without a gap. true, or nil, err.
function Reader:commit(seq)
  return check(C.mw_ffi_wal_reader_commit(open_reader(self), seq, errbuf, ERRLEN))
end

--- Forgets every span in flight: the next starts at the committed cursor.
function Reader:rewind()
  C.mw_ffi_wal_reader_rewind(open_reader(self))
end

--- The reader's counters and gauges (a mw_wal_reader_stats_t owned by the reader,
--- refreshed by each call).
function Reader:stats()
  C.mw_ffi_wal_reader_stats(open_reader(self), self.st)
  return self.st
end

return M
