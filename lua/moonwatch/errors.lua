--- moonwatch.errors: what a user is shown of an error, and what only the debug log gets.
-- An error is *internal* when it is not a string, or when its position
-- ("file:line: ") is in moonwatch's own sources (lua/moonwatch/, stdlib/): a
-- bug of ours, not something the user wrote. Users never see a traceback or a
-- path of moonwatch's sources: an internal error is shown as
-- "internal error in <where>: <message>" and its traceback goes to the log at
-- debug level, once, by whoever caught it. Any other error is shown as its
-- first line (a message raised with error(msg, 0), or the user's own file:line).
local log = require("moonwatch.log")

local M = {}

local dirs = {}

--- Adds a directory of moonwatch's own sources (stdlib, the Lua modules).
---@param dir string
function M.add_source_dir(dir)
  if type(dir) ~= "string" or dir == "" then
    return
  end
  dir = dir:gsub("/+$", "") .. "/"
  for _, d in ipairs(dirs) do
    if d == dir then
      return
    end
  end
  dirs[#dirs + 1] = dir
end

-- This module's own directory (lua/moonwatch/) and the stdlib beside lua/ in a source tree.
do
  local here = debug.getinfo(1, "S").source:match("^@(.*/)[^/]*$")
  if here then
    M.add_source_dir(here)
    M.add_source_dir(here:gsub("lua/moonwatch/$", "stdlib/"))
  end
end

--- True when path is one of moonwatch's own source files. Lua shortens long
--- chunk names in error positions to "..." and their end: such a path is ours
--- when its tail starts with the end of one of the directories.
---@param path string
function M.is_source(path)
  if type(path) ~= "string" then
    return false
  end
  path = path:gsub("^@", "")
  local tail = path:match("^%.%.%.(.*)$")
  for _, d in ipairs(dirs) do
    if path:sub(1, #d) == d then
      return true
    end
    if tail then
      for i = 1, #d - 7 do -- an end of d of 8 bytes at least, so "/" alone matches nothing
        local part = d:sub(i)
        if tail:sub(1, #part) == part then
          return true
        end
      end
    end
  end
  return false
end

local function first_line(s)
  return (s:match("^[^\n]*"))
end

--- Splits "file:line: message" into file, line and message (nil when no position).
local function position(s)
  local file, line, rest = s:match("^(.-):(%d+): (.*)$")
  return file, tonumber(line), rest
end

--- True when err is a bug of moonwatch's (see the module comment).
function M.is_internal(err)
  if type(err) ~= "string" then
    return true
  end
  local file = position(first_line(err))
  return file ~= nil and M.is_source(file)
end

--- The message of err for users: its first line, without a position in moonwatch's sources.
function M.message(err)
  local s = first_line(tostring(err))
  local file, _, rest = position(s)
  if file and M.is_source(file) then
    return rest
  end
  return s
end

--- The innermost stack frame from `level` up that runs user code (a Lua
--- function outside moonwatch's sources), as debug.getinfo's "Sl"; nil if none.
---@param level integer
function M.user_frame(level)
  for l = level + 1, level + 60 do
    local info = debug.getinfo(l, "Sl")
    if not info then
      return nil
    end
    if info.what ~= "C" and info.currentline and info.currentline > 0 and info.source:sub(1, 1) == "@"
      and not M.is_source(info.source) then
      return info
    end
  end
  return nil
end

--- An error raised by user code (a pipeline, a Lua rule) as a message users
--- can read, with the file:line of the user's code that raised it. A string is
--- kept as it is; any other value is described (a table through its
--- __tostring when that works), never "table: 0x..." or an error in the error
--- handler. Use as the handler of an xpcall around user code.
---@param e any
---@return string
function M.from_user(e)
  if type(e) == "string" then
    return e
  end
  local text
  local has_tostring = false
  if type(e) == "table" or type(e) == "userdata" then
    local okm, mt = pcall(getmetatable, e)
    has_tostring = okm and type(mt) == "table" and rawget(mt, "__tostring") ~= nil
  end
  if type(e) == "number" then
    text = tostring(e)
  elseif has_tostring then
    local ok, s = pcall(tostring, e)
    if ok and type(s) == "string" then
      text = s
    elseif ok then
      text = string.format("(error object is a %s value; its __tostring returned a %s value)", type(e), type(s))
    else
      text = string.format("(error object is a %s value; its __tostring failed: %s)", type(e),
        type(s) == "string" and M.message(s) or "(error object is a " .. type(s) .. " value)")
    end
  else
    text = string.format("(error object is a %s value)", type(e))
  end
  local info = M.user_frame(2)
  if info then
    return string.format("%s:%d: %s", info.source:sub(2), info.currentline, text)
  end
  return text
end

--- What a user is shown of err raised in `where` (a component id or a name).
---@param err any the error (a traceback after its first line is left out)
---@param where string
---@return string
function M.describe(err, where)
  if M.is_internal(err) then
    return string.format("internal error in %s: %s", where, M.message(err))
  end
  return M.message(err)
end

--- Logs err's traceback at debug level (for internal errors) and returns describe(err, where).
---@param err any
---@param where string
---@param traceback string|nil the traceback (default: err itself when it carries one)
---@param logger table|nil a moonwatch.log logger (default: the root one)
function M.report(err, where, traceback, logger)
  if M.is_internal(err) then
    local kv = { where = where, traceback = traceback or tostring(err) }
    if logger then
      logger:debug("internal error", kv)
    else
      log.debug("internal error", kv)
    end
  end
  return M.describe(err, where)
end

return M
