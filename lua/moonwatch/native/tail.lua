--- moonwatch.native.tail: globs (local.file_match) and the file tailer (loki.source.file)
--- of runtime/tail/ from Lua. A tailer is C-owned (freed by the GC or close()); one
--- read() fills a whole log-entry batch in C (no Lua per line).
local ffi = require("ffi")
local C = require("moonwatch.ffi").C
local core = require("moonwatch.core")

local M = {}

local ERRLEN = 512
local errbuf = ffi.new("char[?]", ERRLEN)
local outp, lenp, countp = ffi.new("char *[1]"), ffi.new("size_t[1]"), ffi.new("size_t[1]")
local stats = ffi.new("mw_tail_stats_t")
local finfo = ffi.new("mw_tail_file_t")

--- The regular files matching the doublestar pattern and not exclude, sorted.
---@param pattern string
---@param exclude string|nil
---@param min_mtime number|nil seconds since the epoch: older files are left out
---@return string[]|nil paths, string|nil err (a malformed pattern), boolean|nil capped
function M.glob(pattern, exclude, min_mtime)
  local rc = C.mw_ffi_glob(pattern, exclude or "", min_mtime or 0, outp, lenp, countp, errbuf, ERRLEN)
  if rc < 0 then
    return nil, ffi.string(errbuf)
  end
  local paths, buf, n = {}, outp[0], tonumber(lenp[0])
  local i = 0
  while i < n do
    local p = ffi.string(buf + i)
    paths[#paths + 1] = p
    i = i + #p + 1
  end
  if buf ~= nil then
    C.mw_ffi_fs_free(buf)
  end
  return paths, nil, rc == 1
end

--- Whether path matches the doublestar pattern (nil, err for a malformed pattern).
function M.match(pattern, path)
  local rc = C.mw_ffi_glob_match(pattern, path, errbuf, ERRLEN)
  if rc < 0 then
    return nil, ffi.string(errbuf)
  end
  return rc == 1
end

--- Checks an encoding name (iconv's, IANA names): true or nil, err.
function M.check_encoding(name)
  if C.mw_ffi_tail_check_encoding(name, errbuf, ERRLEN) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  return true
end

M.FORMATS = { gz = C.MW_TAIL_GZ, bz2 = C.MW_TAIL_BZ2, z = C.MW_TAIL_Z }

local Tailer = {}
Tailer.__index = Tailer

--- A tailer. opts: positions (file), legacy_positions, encoding, tail_from_end, poll,
--- decompress ("gz", "bz2", "z" or nil), initial_delay (s), max_line_size, max_open_files.
---@return table|nil tailer, string|nil err
function M.new(opts)
  local o = ffi.new("mw_tail_opts_t")
  o.tail_from_end = opts.tail_from_end and 1 or 0
  o.poll = opts.poll and 1 or 0
  o.decompress = opts.decompress and M.FORMATS[opts.decompress] or 0
  o.initial_delay = opts.initial_delay or 0
  o.max_line_size = opts.max_line_size
  o.max_open_files = opts.max_open_files or 1024
  local keep = { opts.encoding or "", opts.positions, opts.legacy_positions or "" }
  o.encoding, o.positions, o.legacy_positions = keep[1], keep[2], keep[3]
  local t = C.mw_ffi_tail_new(o, errbuf, ERRLEN)
  if t == nil then
    return nil, ffi.string(errbuf)
  end
  return setmetatable({ t = ffi.gc(t, C.mw_ffi_tail_free) }, Tailer)
end

--- Whether the tailer uses inotify (false: polling only).
function Tailer:inotify()
  return C.mw_ffi_tail_fd(self.t) >= 0
end

--- Calls fn() whenever inotify has events (nothing when polling); until close().
function Tailer:watch(fn)
  local fd = C.mw_ffi_tail_fd(self.t)
  if fd >= 0 and not self.io then
    self.io = core.io(fd, "r", fn)
  end
end

-- A label table as sorted name 0xFF value 0xFF pairs (empty values left out), and its
-- text for the positions key ({a="1", b="2"}, as Prometheus prints a label set).
local function encode(labels)
  local names = {}
  for k, v in pairs(labels) do
    if v ~= "" then
      names[#names + 1] = k
    end
  end
  table.sort(names)
  local enc, txt = {}, {}
  for i, k in ipairs(names) do
    enc[i] = k .. "\255" .. labels[k] .. "\255"
    txt[i] = k .. "=" .. string.format("%q", labels[k]):gsub("\\\n", "\\n")
  end
  return table.concat(enc), "{" .. table.concat(txt, ", ") .. "}"
end
M.encode = encode

--- Sets the files tailed: a list of { path = ..., labels = { name = value } (the
--- stream's, filename included), key = { name = value } (the positions key's) }.
---@return true|nil ok, string|nil err
function Tailer:set(files)
  C.mw_ffi_tail_sync_begin(self.t)
  local err
  for _, f in ipairs(files) do
    local enc = encode(f.labels)
    local _, key = encode(f.key)
    if C.mw_ffi_tail_add(self.t, f.path, enc, #enc, key, errbuf, ERRLEN) ~= 0 then
      err = ffi.string(errbuf)
      break
    end
  end
  C.mw_ffi_tail_sync_end(self.t)
  if err then
    return nil, err
  end
  return true
end

--- Stops watching inotify's descriptor (events queue in the kernel) until resume().
function Tailer:pause()
  if self.io then
    self.io:stop()
  end
end

function Tailer:resume()
  if self.io then
    self.io:start()
  end
end

--- Marks every file to be checked at the next read (a poll tick).
function Tailer:check_all()
  C.mw_ffi_tail_check_all(self.t)
end

--- Fills batch b (moonwatch.batch.logs) with new lines; true when more are waiting.
function Tailer:read(b, max_entries, max_bytes)
  return C.mw_ffi_tail_read(self.t, b, max_entries, max_bytes) == 1
end

--- Saves the positions file (when changed, or always with force): true or nil, err.
function Tailer:save(force)
  if C.mw_ffi_tail_save(self.t, force and 1 or 0, errbuf, ERRLEN) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  return true
end

--- Counters and gauges of the tailer.
function Tailer:stats()
  C.mw_ffi_tail_stats(self.t, stats)
  return {
    lines_truncated = tonumber(stats.lines_truncated),
    encoding_errors = tonumber(stats.encoding_errors),
    decompress_errors = tonumber(stats.decompress_errors),
    truncations = tonumber(stats.truncations),
    rotations = tonumber(stats.rotations),
    open_errors = tonumber(stats.open_errors),
    files = stats.files,
    active = stats.active,
    positions = stats.positions,
  }
end

--- The files, each { path, state, error, position, size, read_lines, read_bytes }.
function Tailer:files()
  C.mw_ffi_tail_stats(self.t, stats)
  local out = {}
  for i = 0, stats.files - 1 do
    if C.mw_ffi_tail_file(self.t, i, finfo) == 0 then
      out[#out + 1] = {
        path = ffi.string(finfo.path), state = ffi.string(finfo.state), error = ffi.string(finfo.error),
        position = tonumber(finfo.position), size = tonumber(finfo.size),
        read_lines = tonumber(finfo.read_lines), read_bytes = tonumber(finfo.read_bytes),
      }
    end
  end
  return out
end

--- Closes the files and the inotify watch at once (the GC would later).
function Tailer:close()
  if self.io then
    self.io:close()
    self.io = nil
  end
  if self.t then
    C.mw_ffi_tail_free(ffi.gc(self.t, nil))
    self.t = nil
  end
end

return M
