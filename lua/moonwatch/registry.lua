--- moonwatch.registry: finds component modules on the component search path.
-- `mycorp.filter "x" {}` loads mycorp/filter.lua from the first directory of the
-- path that has it; stdlib is the last directory. A module is a plain table:
--   { name = "mycorp.filter", args = { <schema> }, exclusive = {{...}},
--     exports = { name = { type = ..., doc = ... } }, doc = "...",
--     new = function(ctx, args) return instance end }
-- and the instance may implement run(), update(args), stop(), debug_info().
local schema = require("moonwatch.schema")
local errors = require("moonwatch.errors")
local log = require("moonwatch.log")
local fs = require("moonwatch.fs")

local M = {}

local cache = {} -- file path -> { source = text, module = table }

local function read(p)
  local f = io.open(p, "rb")
  if not f then
    return nil
  end
  local s = f:read("*a")
  f:close()
  return s
end

-- Returns mod, or nil, "file: what is wrong", "what is wrong".
local function check_module(mod, name, file)
  local msg
  if type(mod) ~= "table" then
    msg = string.format("component module must return a table, got %s", type(mod))
  elseif mod.name ~= name then
    msg = string.format("component module declares name %q, expected %q", tostring(mod.name), name)
  elseif type(mod.new) ~= "function" then
    msg = string.format("component %s has no new(ctx, args) function", name)
  else
    mod.args = mod.args or {}
    mod.exports = mod.exports or {}
    local ok, err = pcall(schema.check_definition, { args = mod.args, exclusive = mod.exclusive,
      require_one = mod.require_one }, name)
    if ok then
      return mod
    end
    msg = tostring(err)
  end
  return nil, file .. ": " .. msg, msg
end

-- What users see of a component module that cannot be loaded: user_msg, or for
-- a module of moonwatch's own an internal error (its traceback at debug level).
local function load_error(name, file, user_msg, internal_msg, tb)
  if errors.is_source(file) then
    log.debug("internal error", { where = name, traceback = tb or user_msg })
    return string.format("internal error in %s: %s", name, internal_msg)
  end
  return (user_msg:match("^[^\n]*"))
end

--- Finds and loads the module of component `name` ("ns.name").
---@param name string
---@param dirs string[] the component search path
--- The file is read each time: the same module table comes back while its
--- text is unchanged, a new one when it changed (a reload then restarts the
--- components that use it).
---@return table|nil module, string|nil err
function M.find(name, dirs)
  local rel = name:gsub("%.", "/") .. ".lua"
  for _, dir in ipairs(dirs) do
    local file = dir .. "/" .. rel
    local source = read(file)
    if source then
      local hit = cache[file]
      if hit and hit.source == source then
        return hit.module
      end
      local chunk, err = loadstring(source, "@" .. file)
      if not chunk then
        return nil, load_error(name, file, err, errors.message(err))
      end
      local ok, mod = xpcall(chunk, debug.traceback)
      if not ok then
        return nil, load_error(name, file, string.format("loading component %s from %s: %s", name, file,
          errors.message(mod)), errors.message(mod), mod)
      end
      local checked, cerr, cmsg = check_module(mod, name, file)
      if not checked then
        return nil, load_error(name, file, cerr, cmsg)
      end
      checked.file = file
      cache[file] = { source = source, module = checked }
      return checked
    end
  end
  return nil, nil
end

--- The search path as users are shown it: moonwatch's own stdlib is named, not its path.
---@param dirs string[]
function M.describe_path(dirs)
  local out = {}
  for i, d in ipairs(dirs) do
    out[i] = errors.is_source(d:gsub("/*$", "/")) and "the stdlib" or d
  end
  return table.concat(out, ", ")
end

--- Every component name available on the path (for did-you-mean and docs).
function M.list(dirs)
  local names, seen = {}, {}
  for _, dir in ipairs(dirs) do
    for _, path in ipairs(fs.find(dir, ".lua") or {}) do -- an unreadable dir lists nothing
      local n = path:gsub("%.lua$", ""):gsub("/", ".")
      if not seen[n] then
        seen[n] = true
        names[#names + 1] = n
      end
    end
  end
  table.sort(names)
  return names
end

return M
