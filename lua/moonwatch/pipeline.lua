--- moonwatch.pipeline: runs a pipeline script and collects its declarations.
-- `ns.name "label" { args }` declares a component; `ns.name.label.export` is a
-- Reference, resolved when the component's arguments are evaluated, so order
-- of declaration does not matter. The script runs in a fresh environment with
-- the helpers env, concat, constants, json_decode, file, hashmod_shard (moonwatch.sharding),
-- stage, metric, and the top-level
-- blocks logging and tracing. `stage.NAME { ... }` makes a tagged value
-- (moonwatch.schema.tagged) that a component's schema takes as a positional
-- entry (loki.process's stages; `metric.NAME { ... }` inside stage.metrics); the
-- schema refuses an unknown NAME.
local cjson = require("cjson")
local errors = require("moonwatch.errors")
local log = require("moonwatch.log")
local budget = require("moonwatch.budget")
local schema = require("moonwatch.schema")
local sharding = require("moonwatch.sharding")

local M = {}

--- A reference to a component export (a path such as prometheus.exporter.self.x.targets).
local Reference = {}
M.Reference = Reference

--- A lazy concatenation of target lists (concat(...) over references).
local Lazy = {}
M.Lazy = Lazy

function M.is_reference(v)
  return type(v) == "table" and getmetatable(v) == Reference
end

function M.is_lazy(v)
  return type(v) == "table" and getmetatable(v) == Lazy
end

local function path_of(ref)
  return table.concat(rawget(ref, "_path"), ".")
end
M.path_of = path_of

Reference.__index = function(self, k)
  if type(k) ~= "string" then
    error(string.format("cannot index %s with %s", path_of(self), tostring(k)), 2)
  end
  local p = {}
  for i, s in ipairs(rawget(self, "_path")) do
    p[i] = s
  end
  p[#p + 1] = k
  local ctx = rawget(self, "_ctx")
  if ctx.resolver then -- evaluating a function argument: read the export's value
    local found, value = ctx.resolver(p)
    if found then
      return value
    end
  end
  return setmetatable({ _path = p, _ctx = ctx }, Reference)
end
Reference.__newindex = function(self)
  error("cannot assign to " .. path_of(self), 2)
end
Reference.__tostring = function(self)
  return path_of(self)
end
Reference.__call = function(self, label)
  local ctx = rawget(self, "_ctx")
  local name = path_of(self)
  local line = ctx.line_of(3)
  if type(label) ~= "string" then
    ctx.problem(line, string.format("%s: expected a label string, as in %s \"default\" { ... }", name, name))
    return function() end
  end
  return function(args)
    ctx.declare(name, label, args, line)
  end
end

--- Runs a pipeline script.
---@param path string the pipeline file
---@param opts table|nil { source = string (instead of reading path), storage_path = dir }
---@return table|nil result { declarations = {...}, logging = {...}, tracing = {...}, problems = {...}, files = {...} }
---@return string|nil err a syntax or runtime error of the script itself ("file:line: message")
function M.load(path, opts)
  opts = opts or {}
  local alloy = require("moonwatch.alloy.loader")
  if alloy.is_alloy(path) then -- an Alloy configuration file: the same declarations
    return alloy.load(path, opts)
  end
  local chunk, err
  if opts.source then
    chunk, err = loadstring(opts.source, "@" .. path)
  else
    chunk, err = loadfile(path)
  end
  if not chunk then
    return nil, err
  end
  budget.prepare(chunk) -- its functions (arguments, rules) run under the budget too

  local result = { declarations = {}, problems = {}, files = {}, file = path }
  local ctx = {}
  result.ctx = ctx
  local by_id = {}
  local chunkname = "@" .. path

  --- The line of the first stack frame that belongs to the pipeline file.
  function ctx.line_of(level)
    for l = level, level + 20 do
      local info = debug.getinfo(l, "Sl")
      if not info then
        break
      end
      if info.source == chunkname and info.currentline > 0 then
        return info.currentline
      end
    end
    return 0
  end
  function ctx.problem(line, msg)
    table.insert(result.problems, { file = path, line = line, msg = msg })
  end
  function ctx.declare(name, label, args, line)
    if type(args) ~= "table" then
      ctx.problem(line, string.format("%s %q: expected a table of arguments { ... }, got %s", name, label, type(args)))
      return
    end
    if not label:match("^[%a_][%w_]*$") then
      ctx.problem(line, string.format("%s %q: label must be an identifier (letters, digits, _)", name, label))
      return
    end
    local id = name .. "." .. label
    if by_id[id] then
      ctx.problem(line, string.format("%s %q: already declared at %s:%d", name, label, path, by_id[id].line))
      return
    end
    local decl = { id = id, name = name, label = label, args = args, file = path, line = line }
    by_id[id] = decl
    table.insert(result.declarations, decl)
  end

  local function block(name)
    return function(args)
      local line = ctx.line_of(2)
      if type(args) == "string" then
        -- `logging "x" { ... }`: a label, as a component's; the table comes next
        ctx.problem(line, string.format("%s: a top-level block takes no label: write %s { ... }, not %s %q { ... }",
          name, name, name, args))
        return function() end
      end
      if type(args) ~= "table" then
        ctx.problem(line, name .. ": expected a table { ... }, got " .. type(args))
        return
      end
      if result[name] then
        ctx.problem(line, name .. ": declared twice")
        return
      end
      result[name] = { args = args, line = line, file = path }
    end
  end

  -- `kind.NAME { ... }`: a tagged value for a schema to take as a positional entry
  local function tagged_helper(kind)
    return setmetatable({}, {
      __index = function(_, tag)
        local line = ctx.line_of(2)
        return function(args)
          return schema.tagged(kind, tag, args, line)
        end
      end,
      __newindex = function()
        error(kind .. " is read-only", 2)
      end,
    })
  end

  local helpers = {
    env = function(name, default)
      if type(name) ~= "string" then
        error("env: expected a variable name", 2)
      end
      local v = os.getenv(name)
      if v == nil or v == "" then
        return default
      end
      return v
    end,
    concat = function(...)
      local parts = { n = select("#", ...), ... }
      local lazy = false
      for i = 1, parts.n do
        if M.is_reference(parts[i]) or M.is_lazy(parts[i]) or type(parts[i]) == "function" then
          lazy = true
        elseif type(parts[i]) ~= "table" then
          error(string.format("concat: argument %d is %s, expected a list", i, type(parts[i])), 2)
        end
      end
      if lazy then
        return setmetatable({ parts = parts }, Lazy)
      end
      local out = {}
      for i = 1, parts.n do
        for _, v in ipairs(parts[i]) do
          out[#out + 1] = v
        end
      end
      return out
    end,
    json_decode = function(s)
      local ok, v = pcall(cjson.decode, s)
      if not ok then
        error("json_decode: " .. tostring(v), 2)
      end
      return v
    end,
    file = function(p)
      local f, ferr = io.open(p, "rb")
      if not f then
        error("file: " .. ferr, 2)
      end
      local data = f:read("*a")
      f:close()
      table.insert(result.files, p)
      return data
    end,
    constants = M.constants(opts.storage_path),
    alloy = require("moonwatch.alloy.stdlib").helper(),
    -- the relabel rules that keep this replica's share of the targets (moonwatch.sharding)
    hashmod_shard = function(args)
      local ok, rules = pcall(sharding.rules, args, nil, M.constants().hostname)
      if not ok then
        error("hashmod_shard: " .. tostring(rules), 2)
      end
      return rules
    end,
    stage = tagged_helper("stage"),
    metric = tagged_helper("metric"),
    logging = block("logging"),
    tracing = block("tracing"),
  }

  -- A helper or a standard global read once is kept in the environment itself: the pipeline's
  -- functions (relabel rules, stage.lua, components' callbacks) read `math`, `tostring`... per
  -- series or entry, and a table hit costs nothing where this function call cost a third of a
  -- simple rule's time (seen in /debug/pprof/profile).
  local env
  env = setmetatable({}, {
    __index = function(_, k)
      local h = helpers[k]
      if h ~= nil then
        rawset(env, k, h)
        return h
      end
      local g = _G[k]
      if g ~= nil then
        rawset(env, k, g)
        return g
      end
      if k == "local_" then -- Alloy's `local` namespace (a Lua keyword): local_.file_match "x" {}
        return setmetatable({ _path = { "local" }, _ctx = ctx }, Reference)
      end
      if type(k) == "string" and k:match("^[%a_][%w_]*$") then
        return setmetatable({ _path = { k }, _ctx = ctx }, Reference)
      end
      return nil
    end,
  })
  setfenv(chunk, env)
  local ok, run_err = budget.xpcall(chunk, function(e)
    if type(e) ~= "string" then
      return errors.from_user(e) -- error({}) and the like: described, with the user's file:line
    elseif errors.is_internal(e) then
      -- a bug of moonwatch's met while running the script: the script's line, no source path
      log.debug("internal error", { where = "the pipeline loader", traceback = debug.traceback(tostring(e), 2) })
      return string.format("%s:%d: internal error in the pipeline loader: %s", path, ctx.line_of(2), errors.message(e))
    end
    return e
  end)
  if not ok then
    return nil, run_err
  end
  return result
end

local hostname
--- constants.hostname, constants.os, constants.arch (as Alloy's constants), and
--- moonwatch's constants.storage_path (the --storage.path directory).
---@param storage_path string|nil
function M.constants(storage_path)
  if not hostname then
    hostname = os.getenv("HOSTNAME")
    local f = io.open("/proc/sys/kernel/hostname", "r")
    if f then
      hostname = f:read("*l") or hostname
      f:close()
    end
    hostname = hostname or "localhost"
  end
  return setmetatable({}, {
    __index = {
      hostname = hostname,
      os = jit.os:lower(),
      arch = jit.arch == "x64" and "amd64" or jit.arch,
      storage_path = storage_path or "./data",
    },
    __newindex = function()
      error("constants are read-only", 2)
    end,
  })
end

return M
