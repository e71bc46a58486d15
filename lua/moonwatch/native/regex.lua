--- moonwatch.native.regex: RE2-syntax regexes (runtime/base/regex.c) with capture groups,
-- for matching Lua strings (loki.process's regex, drop and match stages).
--
--   local regex = require("moonwatch.native.regex")
--   local re = assert(regex.new("(?P<level>\\w+): (?P<msg>.*)"))
--   re:find("warn: disk full")           --> true
--   re:captures("warn: disk full")       --> { [1] = "warn", [2] = "disk full" } (nil: no match)
--   re:names()                           --> { [1] = "level", [2] = "msg" }
local ffi = require("ffi")
local C = require("moonwatch.ffi").C

local M = {}

local ERRLEN = 512
local errbuf = ffi.new("char[?]", ERRLEN)

local Regex = {}
Regex.__index = Regex

--- Compiles re (Go's RE2 syntax). anchored: the whole string must match.
---@param re string
---@param anchored boolean|nil
---@return table|nil regex, string|nil err
function M.new(re, anchored)
  if type(re) ~= "string" then
    return nil, "regex must be a string, got " .. type(re)
  end
  local r = C.mw_ffi_regex_new(re, #re, anchored and 1 or 0, errbuf, ERRLEN)
  if r == nil then
    return nil, ffi.string(errbuf)
  end
  r = ffi.gc(r, C.mw_ffi_regex_free)
  local n = tonumber(C.mw_ffi_regex_groups(r))
  local names = {}
  for i = 1, n do
    local p = C.mw_ffi_regex_group_name(r, i)
    if p ~= nil then
      names[i] = ffi.string(p)
    end
  end
  return setmetatable({ r = r, n = n, group_names = names, ov = ffi.new("int64_t[?]", 2 * (n + 1)),
    source = re }, Regex)
end

--- True when s has a match.
---@param s string
---@return boolean
function Regex:find(s)
  return C.mw_ffi_regex_match(self.r, s, #s, 0, nil) == 1
end

--- The groups of the first match in s ({ [i] = string }, a group that did not take part absent),
--- or nil when s does not match.
---@param s string
---@return table|nil
function Regex:captures(s)
  local ov = self.ov
  if C.mw_ffi_regex_match(self.r, s, #s, 0, ov) ~= 1 then
    return nil
  end
  local out = {}
  for i = 1, self.n do
    local a = tonumber(ov[2 * i])
    if a >= 0 then
      out[i] = s:sub(a + 1, tonumber(ov[2 * i + 1]))
    end
  end
  return out
end

--- The byte offsets of the first match in s at or after init (1-based, default 1): a table
--- { [0] = start, [1] = end, [2] = group 1 start, ... } of 0-based offsets (end exclusive, -1 for
--- a group that did not take part), or nil when there is none.
---@param s string
---@param init integer|nil
---@return table|nil
function Regex:offsets(s, init)
  local ov = self.ov
  if C.mw_ffi_regex_match(self.r, s, #s, (init or 1) - 1, ov) ~= 1 then
    return nil
  end
  local out = {}
  for i = 0, 2 * self.n + 1 do
    out[i] = tonumber(ov[i])
  end
  return out
end

--- The offsets (as Regex:offsets gives them) of every successive non-overlapping match in s,
--- as Go's FindAllStringSubmatchIndex: after a match the search goes on from its end, and an
--- empty match right after a match is skipped (the search steps over one character).
---@param s string
---@return table
function Regex:all(s)
  local ms, pos, prev_end, n = {}, 0, -1, #s
  while pos <= n do
    local ov = self:offsets(s, pos + 1)
    if not ov then
      break
    end
    local accept = true
    if ov[1] == pos then -- an empty match here
      accept = ov[0] ~= prev_end
      local c = s:byte(pos + 1)
      pos = pos + ((not c or c < 0xC0) and 1 or c < 0xE0 and 2 or c < 0xF0 and 3 or 4)
    else
      pos = ov[1]
    end
    prev_end = ov[1]
    if accept then
      ms[#ms + 1] = ov
    end
  end
  return ms
end

--- The names of the groups: { [i] = name } for the named ones.
function Regex:names()
  return self.group_names
end

--- The number of capture groups.
function Regex:groups()
  return self.n
end

return M
