--- moonwatch.native.pprof: the C half of /debug/pprof from Lua: the profile builder and
--- checker (runtime/pprof/profile.c) and the CPU sampler (runtime/pprof/cpu.c). Builders are
--- freed by the GC; methods return `value` or `nil, err`. Event loop thread only.
local ffi = require("ffi")
local C = require("moonwatch.ffi").C
local common = require("moonwatch.native.common")

local M = {}

local ERRLEN, errbuf, err, check = common.ERRLEN, common.errbuf, common.err, common.check

local Builder = {}
Builder.__index = Builder

--- A new profile builder.
---@return table
function M.builder()
  local h = C.mw_ffi_pprof_new()
  if h == nil then
    error("out of memory", 2)
  end
  return setmetatable({ h = ffi.gc(h, C.mw_ffi_pprof_free), ntypes = 0 }, Builder)
end

local function oom(rc)
  if rc ~= 0 then
    error("profile: out of memory", 3)
  end
end

--- Appends a sample type (every sample has one value per type, in order).
function Builder:sample_type(type_, unit)
  oom(C.mw_ffi_pprof_sample_type(self.h, type_, unit))
  self.ntypes = self.ntypes + 1
end

--- Period type, unit and period; start time and duration (seconds); default sample type.
function Builder:meta(period_type, period_unit, period, time_s, duration_s, default_type)
  oom(C.mw_ffi_pprof_meta(self.h, period_type, period_unit, period, math.floor(time_s * 1e9),
    math.floor((duration_s or 0) * 1e9), default_type))
end

function Builder:comment(text)
  oom(C.mw_ffi_pprof_comment(self.h, text))
end

--- The location id of a named function (file, start line) at line.
---@return integer
function Builder:func_location(name, file, start_line, line)
  local id = C.mw_ffi_pprof_func_location(self.h, name, file or "", start_line or 0, line or 0)
  if id == 0 then
    error("profile: out of memory", 2)
  end
  return id
end

--- Appends a sample: location ids (leaf first), values (one per sample type), labels
--- ({ key = value }).
function Builder:sample(locs, values, labels)
  local nl = #locs
  local l = ffi.new("uint64_t[?]", nl + 1)
  for i = 1, nl do
    l[i - 1] = locs[i]
  end
  local v = ffi.new("int64_t[?]", #values + 1)
  for i = 1, #values do
    v[i - 1] = values[i]
  end
  local parts, n = {}, 0
  for k, x in pairs(labels or {}) do
    parts[#parts + 1] = tostring(k) .. "\0" .. tostring(x) .. "\0"
    n = n + 1
  end
  local packed = table.concat(parts)
  oom(C.mw_ffi_pprof_sample(self.h, l, nl, v, #values, packed, n))
end

--- The profile.proto bytes, gzipped unless raw.
---@return string|nil body, string|nil err
function Builder:finish(raw)
  local out, len = ffi.new("const uint8_t *[1]"), ffi.new("size_t[1]")
  if C.mw_ffi_pprof_finish(self.h, raw and 0 or 1, out, len, errbuf, ERRLEN) ~= 0 then
    return nil, err()
  end
  return ffi.string(out[0], len[0])
end

--- Checks a profile as pprof reads it; returns its sample count and sample type count, or
--- nil, err naming what is wrong.
---@param data string
---@return integer|nil samples, integer|string types_or_err
function M.check(data)
  local ns, nt = ffi.new("size_t[1]"), ffi.new("size_t[1]")
  if C.mw_ffi_pprof_check(data, #data, ns, nt, errbuf, ERRLEN) ~= 0 then
    return nil, err()
  end
  return tonumber(ns[0]), tonumber(nt[0])
end

local Delta = {}
Delta.__index = Delta

--- A delta computer of cumulative profiles (Alloy's deltaAppender) for the sample types
--- { { type, unit }, ... }: d:next(profile) gives the profile's delta (gzipped), "" for the first
--- one (nothing to be a delta of), or nil, err.
function M.delta(types)
  local parts = {}
  for i, t in ipairs(types) do
    parts[i] = t[1] .. "\0" .. t[2] .. "\0"
  end
  local h = C.mw_ffi_pprof_delta_new(table.concat(parts), #types)
  if h == nil then
    error("out of memory", 2)
  end
  return setmetatable({ h = ffi.gc(h, C.mw_ffi_pprof_delta_free),
    out = ffi.new("const uint8_t *[1]"), len = ffi.new("size_t[1]") }, Delta)
end

function Delta:next(data)
  if C.mw_ffi_pprof_delta_next(self.h, data, #data, self.out, self.len, errbuf, ERRLEN) ~= 0 then
    return nil, err()
  end
  return self.len[0] == 0 and "" or ffi.string(self.out[0], self.len[0])
end

--- The function name at address pc of this process, or nil.
function M.symbol(pc)
  local buf = ffi.new("char[512]")
  if C.mw_ffi_pprof_symbol(pc, buf, 512) ~= 0 then
    return nil
  end
  return ffi.string(buf)
end

--- The C heap (glibc mallinfo2, main arena): in-use bytes, mmapped bytes, free bytes held.
function M.mallinfo()
  local a, b, c = ffi.new("uint64_t[1]"), ffi.new("uint64_t[1]"), ffi.new("uint64_t[1]")
  C.mw_ffi_pprof_mallinfo(a, b, c)
  return tonumber(a[0]), tonumber(b[0]), tonumber(c[0])
end

--- CPU sampler (see runtime/pprof/cpu.h).
function M.cpu_prepare()
  return check(C.mw_ffi_pprof_cpu_prepare(errbuf, ERRLEN))
end

function M.cpu_start(hz, max_samples)
  return check(C.mw_ffi_pprof_cpu_start(hz, max_samples, errbuf, ERRLEN))
end

M.cpu_drain = function()
  C.mw_ffi_pprof_cpu_drain()
end

function M.cpu_lua(frames, ticks)
  return C.mw_ffi_pprof_cpu_lua(frames, #frames, ticks) == 0
end

function M.cpu_stop()
  C.mw_ffi_pprof_cpu_stop()
end

--- The signal handler's cost since the start: seconds spent in it, ticks handled.
function M.cpu_cost()
  local ns, n = ffi.new("uint64_t[1]"), ffi.new("uint64_t[1]")
  C.mw_ffi_pprof_cpu_cost(ns, n)
  return tonumber(ns[0]) / 1e9, tonumber(n[0])
end

function M.cpu_running()
  return C.mw_ffi_pprof_cpu_running() ~= 0
end

--- Adds the CPU samples to builder b; returns the count of lost ticks.
function M.cpu_build(b)
  local lost = ffi.new("uint64_t[1]")
  oom(C.mw_ffi_pprof_cpu_build(b.h, lost))
  return tonumber(lost[0])
end

return M
