--- moonwatch.native.procgroup: process-exporter's grouped process metrics
--- (runtime/procgroup.c) from Lua, for prometheus.exporter.process.
-- A tracker keeps state between collections (counters stay monotonic while
-- processes come and go); it is freed by the GC. Event loop thread only.
local ffi = require("ffi")
local C = require("moonwatch.ffi").C
local metrics = require("moonwatch.metrics")

local M = {}

local ERRLEN = 512
local errbuf = ffi.new("char[?]", ERRLEN)

--- Checks a name template (empty: "{{.ExeBase}}") as new() parses it.
---@param tpl string
---@return true|nil ok, string|nil err
function M.check_template(tpl)
  if type(tpl) ~= "string" then
    return nil, "name template must be a string, got " .. type(tpl)
  end
  if C.mw_ffi_procgroup_template_check(tpl, errbuf, ERRLEN) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  return true
end

-- A C array of the strings of list (nil: the rule is absent), anchored in keep.
local function cstrings(list, keep, what)
  if list == nil then
    return nil, 0
  end
  local arr = ffi.new("const char *[?]", math.max(#list, 1))
  for i, s in ipairs(list) do
    if type(s) ~= "string" then
      error(string.format("%s[%d] must be a string, got %s", what, i, type(s)), 0)
    end
    keep[#keep + 1] = s
    arr[i - 1] = s
  end
  keep[#keep + 1] = arr
  return arr, #list
end

local Tracker = {}
Tracker.__index = Tracker

--- A tracker. opts: procfs_path (default "/proc"), track_children, track_threads,
--- gather_smaps, recheck_on_scrape, remove_empty_groups (booleans). matchers: a list
--- of { comm = {...}, exe = {...}, cmdline = {regex...}, name = template }; first
--- match wins.
---@return table|nil tracker, string|nil err naming the matcher (1-based) and field
function M.new(opts, matchers)
  local keep = {}
  local o = ffi.new("mw_ffi_procgroup_opts_t")
  if opts.procfs_path ~= nil then
    if type(opts.procfs_path) ~= "string" then
      return nil, "procfs_path must be a string"
    end
    o.procfs_path = opts.procfs_path
    keep[#keep + 1] = opts.procfs_path
  end
  o.track_children = opts.track_children and 1 or 0
  o.track_threads = opts.track_threads and 1 or 0
  o.gather_smaps = opts.gather_smaps and 1 or 0
  o.recheck_on_scrape = opts.recheck_on_scrape and 1 or 0
  o.remove_empty_groups = opts.remove_empty_groups and 1 or 0
  local n = #matchers
  local ms = ffi.new("mw_ffi_procgroup_matcher_t[?]", math.max(n, 1))
  local ok, cerr = pcall(function()
    for i, m in ipairs(matchers) do
      local c = ms[i - 1]
      local what = "matcher " .. i .. ": "
      c.comm, c.n_comm = cstrings(m.comm, keep, what .. "comm")
      c.exe, c.n_exe = cstrings(m.exe, keep, what .. "exe")
      c.cmdline, c.n_cmdline = cstrings(m.cmdline, keep, what .. "cmdline")
      if m.name ~= nil and type(m.name) ~= "string" then
        error(what .. "name must be a string", 0)
      end
      c.name = m.name
      keep[#keep + 1] = m.name
    end
  end)
  if not ok then
    return nil, cerr
  end
  local out = ffi.new("mw_procgroup_t *[1]")
  if C.mw_ffi_procgroup_new(o, ms, n, out, errbuf, ERRLEN) ~= 0 then
    return nil, ffi.string(errbuf)
  end
  local _ = keep
  return setmetatable({ h = ffi.gc(out[0], C.mw_ffi_procgroup_free) }, Tracker)
end

--- Collects now for one request's Accept and Accept-Encoding headers: body,
--- content type, gzipped; or nil, err.
function Tracker:collect(accept, accept_encoding)
  return metrics.expose_c(C.mw_ffi_procgroup_collect, self.h, accept, accept_encoding)
end

return M
