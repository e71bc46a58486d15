--- moonwatch.alloy.loader: an Alloy configuration file as a pipeline, i.e. the same
-- declarations moonwatch.pipeline.load collects from a Lua pipeline, so one
-- controller, one set of schemas and one graph serve both syntaxes:
--   - a labelled top-level block is a component declaration, its body the argument
--     table: attributes are fields, a nested block a nested table, a block repeated a
--     list of tables, a block `kind.tag { ... }` (loki.process's `stage.json`) a
--     positional tagged entry, as `stage.json { ... }` in Lua;
--   - `logging { ... }` and `tracing { ... }` are the top-level blocks;
--   - an expression is evaluated once when it reads no component export; a reference
--     (`prometheus.remote_write.x.receiver`) is a moonwatch.pipeline Reference; concat()
--     over references is a lazy concat, as in Lua; any other expression that reads
--     exports is a function argument, re-run when the exports it reads change.
-- Problems carry file, line and column; all are reported at once.
local parser = require("moonwatch.alloy.parser")
local stdlib = require("moonwatch.alloy.stdlib")
local pipeline = require("moonwatch.pipeline")
local schema = require("moonwatch.schema")

local M = {}

-- Alloy's top-level blocks moonwatch does not have.
local UNSUPPORTED_TOP = {
  argument = "module arguments", export = "module exports", declare = "custom components (declare)",
  http = "the http block (use the --server.http.* flags)", remotecfg = "remote configuration",
  livedebugging = "the livedebugging block (moonwatch's live debugging is always on)",
  foreach = "foreach",
}

-- The names of an identifier/field chain (a.b.c), or nil.
local function chain(e)
  local names = {}
  while e.t == "access" do
    table.insert(names, 1, e.name)
    e = e.obj
  end
  if e.t ~= "ident" then
    return nil
  end
  table.insert(names, 1, e.name)
  return names
end
M.chain = chain

-- True when names read the standard library rather than a component.
local function is_stdlib(names)
  return stdlib.NAMESPACES[names[1]] or (#names == 1 and stdlib.functions[names[1]] ~= nil)
end
M.is_stdlib = is_stdlib

--- Calls fn(names, expr) for every component reference in e.
local function each_ref(e, fn)
  local names = chain(e)
  if names then
    if not is_stdlib(names) then
      fn(names, e)
    end
    return
  end
  if e.t == "list" then
    for _, x in ipairs(e.items) do
      each_ref(x, fn)
    end
  elseif e.t == "object" then
    for _, x in ipairs(e.vals) do
      each_ref(x, fn)
    end
  elseif e.t == "access" or e.t == "index" then
    each_ref(e.obj, fn)
    if e.idx then
      each_ref(e.idx, fn)
    end
  elseif e.t == "call" then
    if not chain(e.fn) then
      each_ref(e.fn, fn)
    end
    for _, x in ipairs(e.args) do
      each_ref(x, fn)
    end
  elseif e.t == "unary" or e.t == "paren" then
    each_ref(e.e, fn)
  elseif e.t == "binary" then
    each_ref(e.l, fn)
    each_ref(e.r, fn)
  end
end
M.each_ref = each_ref

local function has_refs(e)
  local found = false
  each_ref(e, function()
    found = true
  end)
  return found
end

local NULL_IN_LIST = "a list cannot hold null in moonwatch"

-- An evaluation error at e: "file:line:col: message".
local function eval_error(file, e, msg)
  error(string.format("%s:%d:%d: %s", file, e.line, e.col, msg), 0)
end

--- Evaluates e. env = { file, ctx, constants }: a reference reads exports through
--- ctx.resolver (set by the controller while a function argument runs).
local function eval(e, env)
  local t = e.t
  if t == "lit" then
    return e.v
  elseif t == "null" then
    return nil
  elseif t == "paren" then
    return eval(e.e, env)
  elseif t == "list" then
    local out = {}
    for i, x in ipairs(e.items) do
      out[i] = eval(x, env)
      if out[i] == nil then -- a hole: ipairs, #, concat and join would stop before it
        eval_error(env.file, x, NULL_IN_LIST)
      end
    end
    return out
  elseif t == "object" then
    local out = {}
    for i, k in ipairs(e.keys) do
      out[k] = eval(e.vals[i], env)
    end
    return out
  end
  local names = chain(e)
  if names then
    if names[1] == "constants" then
      if #names ~= 2 then
        eval_error(env.file, e, "constants has the fields hostname, os, arch")
      end
      local v = env.constants[names[2]]
      if v == nil then
        eval_error(env.file, e, string.format("constants has no field %q (it has hostname, os, arch)", names[2]))
      end
      return v
    elseif is_stdlib(names) then
      eval_error(env.file, e, table.concat(names, ".") .. " is a function: call it with (...)")
    end
    local v = setmetatable({ _path = { names[1] }, _ctx = env.ctx }, pipeline.Reference)
    for i = 2, #names do
      if pipeline.is_reference(v) then
        v = v[names[i]]
      elseif type(v) == "table" then
        v = v[names[i]]
      else
        eval_error(env.file, e, string.format("cannot read field %s of %s", names[i], stdlib.typename(v)))
      end
    end
    if pipeline.is_reference(v) then
      eval_error(env.file, e, "reference to undeclared component export: " .. pipeline.path_of(v))
    end
    return v
  end
  if t == "access" then
    local ok, v = pcall(stdlib.field, eval(e.obj, env), e.name)
    if not ok then
      eval_error(env.file, e, v)
    end
    return v
  elseif t == "index" then
    local obj, idx = eval(e.obj, env), eval(e.idx, env)
    local ok, v = pcall(stdlib.index, obj, idx)
    if not ok then
      eval_error(env.file, e, v)
    end
    return v
  elseif t == "call" then
    local fnames = chain(e.fn)
    local fname = fnames and table.concat(fnames, ".")
    local fn = fname and stdlib.functions[fname]
    if not fn then
      eval_error(env.file, e, string.format("unknown function %s", fname or "(not a name)"))
    end
    local args = {}
    for i, x in ipairs(e.args) do
      args[i] = eval(x, env)
    end
    local ok, v = pcall(fn, unpack(args, 1, #e.args))
    if not ok then
      eval_error(env.file, e, fname .. ": " .. tostring(v):gsub("^" .. fname:gsub("%p", "%%%0") .. ": ", ""))
    end
    return v
  elseif t == "unary" then
    local ok, v = pcall(stdlib.unary, e.op, eval(e.e, env))
    if not ok then
      eval_error(env.file, e, v)
    end
    return v
  elseif t == "binary" then
    -- both sides, && and || too: Alloy does not short-circuit
    local l = eval(e.l, env)
    local r = eval(e.r, env)
    local ok, v
    if e.op == "/" and stdlib.is_int_expr(e) then -- Alloy's integer division
      ok, v = pcall(stdlib.idiv, l, r)
    else
      ok, v = pcall(stdlib.binary, e.op, l, r)
    end
    if not ok then
      eval_error(env.file, e, v)
    end
    return v
  end
  eval_error(env.file, e, "cannot evaluate " .. tostring(t))
end
M.eval = eval

-- Checks at load time what can be: every function called exists.
local function check_calls(e, env, problems)
  if e.t == "call" then
    local fnames = chain(e.fn)
    local fname = fnames and table.concat(fnames, ".")
    if not (fname and stdlib.functions[fname]) then
      problems[#problems + 1] = { file = env.file, line = e.line, col = e.col,
        msg = (env.where or "") .. string.format("unknown function %s (moonwatch knows: %s)", fname or "(not a name)",
          table.concat(schema.sorted_keys(stdlib.functions), ", ")) }
    end
  end
  for _, k in ipairs({ "e", "l", "r", "obj", "idx" }) do
    if type(e[k]) == "table" and e[k].t then
      check_calls(e[k], env, problems)
    end
  end
  for _, list in ipairs({ e.items, e.vals, e.args }) do
    for _, x in ipairs(list) do
      check_calls(x, env, problems)
    end
  end
end

--- The Lua value of an attribute's expression (see the header); refs collects a
--- Reference per component export a function argument reads (for the controller's
--- checks: the other references are in the arguments themselves).
local function compile(e, env, refs, problems)
  local t = e.t
  if t == "paren" then
    return compile(e.e, env, refs, problems)
  elseif t == "list" then
    local out = {}
    for i, x in ipairs(e.items) do
      local n = #problems
      out[i] = compile(x, env, refs, problems)
      if out[i] == nil and #problems == n then
        problems[#problems + 1] = { file = env.file, line = x.line, col = x.col, msg = (env.where or "") .. NULL_IN_LIST }
      end
    end
    return out
  elseif t == "object" then
    local out = {}
    for i, k in ipairs(e.keys) do
      out[k] = compile(e.vals[i], env, refs, problems)
    end
    return out
  end
  local names = chain(e)
  if names and not is_stdlib(names) then
    -- checked in the arguments; _line and _col: where the controller's problems point
    return setmetatable({ _path = names, _ctx = env.ctx, _line = e.line, _col = e.col }, pipeline.Reference)
  end
  check_calls(e, env, problems)
  if not has_refs(e) then
    local ok, v = pcall(eval, e, env)
    if not ok then
      local line, col, msg = tostring(v):match("^.-:(%d+):(%d+): (.*)$")
      problems[#problems + 1] = { file = env.file, line = tonumber(line) or e.line, col = tonumber(col) or e.col,
        msg = (env.where or "") .. (msg or tostring(v)) }
      return nil
    end
    return v
  end
  if t == "call" then
    local fname = table.concat(chain(e.fn) or {}, ".")
    if fname == "concat" or fname == "array.concat" then
      local parts = { n = #e.args }
      for i, x in ipairs(e.args) do
        parts[i] = compile(x, env, refs, problems)
      end
      return setmetatable({ parts = parts }, pipeline.Lazy)
    end
  end
  each_ref(e, function(rnames, re)
    refs[#refs + 1] = setmetatable({ _path = rnames, _ctx = env.ctx, _line = re.line, _col = re.col },
      pipeline.Reference)
  end)
  return function()
    return eval(e, env)
  end
end
M.compile = compile

local function join(path, k)
  return path ~= "" and path .. "." .. k or k
end

-- The argument table of a block body at path (as the schema's problems name it:
-- "endpoint.basic_auth.password", "endpoint[2].url"); env.positions[path] = { line, col }
-- of each attribute and block, so a schema problem points at it.
-- env.order lists the keys of env.positions in the order they were set: the keys a block's
-- body set are a span of it (what the second block of a name re-indexes, without scanning
-- all positions: that was quadratic in the number of repeated blocks).
local function set_position(env, key, pos)
  env.positions[key] = pos
  env.order[#env.order + 1] = key
end

-- The kinds of `kind.tag { ... }` blocks that are positional tagged entries (the pipeline
-- environment's helpers: loki.process's stage.*, stage.metrics's metric.*).
M.TAGGED = { stage = true, metric = true }

--- A block body with Alloy's other dotted nested blocks as the nested blocks they stand for:
--- `profile.fgprof { ... }` and `profile.custom "name" { ... }` (pyroscope.scrape's
--- profiling_config) are `profile { fgprof { ... } custom { name = "name" ... } }`, in one
--- `profile` block where the first of them is; a block's label is its `name` argument.
--- Blocks of a tagged kind, and the rest, stay as they are.
---@param stmts table the statements of a body (moonwatch.alloy.parser)
---@return table stmts
function M.nest(stmts)
  local out, groups = {}, {}
  for _, s in ipairs(stmts) do
    local head, rest
    if s.kind == "block" then
      head, rest = s.name:match("^([%w_]+)%.(.+)$")
    end
    if head and not M.TAGGED[head] then
      local g = groups[head]
      if not g then
        g = { kind = "block", name = head, line = s.line, col = s.col, body = {} }
        groups[head] = g
        out[#out + 1] = g
      end
      local body = s.body
      if s.label then
        body = { { kind = "attr", name = "name", line = s.line, col = s.col,
          value = { t = "lit", v = s.label, line = s.line, col = s.col } } }
        for _, x in ipairs(s.body) do
          body[#body + 1] = x
        end
      end
      g.body[#g.body + 1] = { kind = "block", name = rest, line = s.line, col = s.col, body = body }
    else
      out[#out + 1] = s
    end
  end
  return out
end

local function body_args(body, env, refs, problems, path)
  path = path or ""
  body = M.nest(body)
  local args, kinds = {}, {} -- kinds[name] = "attr" | number of blocks
  local spans = {} -- name -> { from, to } of env.order: the keys its first block's body set
  for _, s in ipairs(body) do
    local function problem(msg)
      problems[#problems + 1] = { file = env.file, line = s.line, col = s.col, msg = (env.where or "") .. msg }
    end
    if s.kind == "attr" then
      if kinds[s.name] then
        problem(string.format("%s: set twice in the same block", join(path, s.name)))
      else
        kinds[s.name] = "attr"
        set_position(env, join(path, s.name), { s.line, s.col })
        local saved = env.where
        env.where = (saved or "") .. join(path, s.name) .. ": "
        args[s.name] = compile(s.value, env, refs, problems)
        env.where = saved
      end
    elseif s.label then
      problem(string.format("%s %q: a nested block takes no label", s.name, s.label))
    elseif s.name:find(".", 1, true) then
      local kind, tag = s.name:match("^([%w_]+)%.(.+)$")
      local v = schema.tagged(kind, tag, body_args(s.body, env, refs, problems, s.name), s.line)
      v.col = s.col
      args[#args + 1] = v
    else
      local k = kinds[s.name]
      local p = join(path, s.name)
      if k == "attr" then
        problem(string.format("%s: given both as an attribute and as a block", p))
      elseif k == nil then
        kinds[s.name] = 1
        set_position(env, p, { s.line, s.col })
        local from = #env.order + 1
        args[s.name] = body_args(s.body, env, refs, problems, p)
        spans[s.name] = { from, #env.order }
      else
        if k == 1 then -- the first block of the name is the list's first element
          args[s.name] = { args[s.name] }
          set_position(env, p .. "[1]", env.positions[p])
          -- its attributes' positions under the indexed path too
          for i = spans[s.name][1], spans[s.name][2] do
            local key = env.order[i]
            if key:sub(1, #p + 1) == p .. "." then
              set_position(env, p .. "[1]" .. key:sub(#p + 1), env.positions[key])
            end
          end
        end
        kinds[s.name] = k + 1
        local ip = string.format("%s[%d]", p, k + 1)
        set_position(env, ip, { s.line, s.col })
        table.insert(args[s.name], body_args(s.body, env, refs, problems, ip))
      end
    end
  end
  return args
end

--- Loads an Alloy configuration file as moonwatch.pipeline.load loads a Lua one.
---@param path string
---@param opts table|nil { source = string, storage_path = dir }
---@return table|nil result as moonwatch.pipeline.load's
---@return string|nil err "file:line:col: message" (a syntax error)
function M.load(path, opts)
  opts = opts or {}
  local src = opts.source
  if not src then
    local f, ferr = io.open(path, "rb")
    if not f then
      return nil, "cannot open " .. tostring(ferr)
    end
    local rerr
    src, rerr = f:read("*a") -- nil for a directory
    f:close()
    if not src then
      return nil, string.format("cannot read %s: %s", path, tostring(rerr))
    end
  end
  local body, err = parser.parse(src, path)
  if not body then
    return nil, err
  end
  local result = { declarations = {}, problems = {}, files = {}, file = path, syntax = "alloy" }
  local ctx = {}
  result.ctx = ctx
  local env = { file = path, ctx = ctx, constants = pipeline.constants(opts.storage_path), positions = {},
    order = {} }
  local problems = result.problems
  local by_id = {}
  for _, s in ipairs(body) do
    local function problem(msg)
      problems[#problems + 1] = { file = path, line = s.line, col = s.col, msg = msg }
    end
    if s.kind == "attr" then
      problem(string.format("%s: an attribute is not allowed at the top level (only blocks)", s.name))
    elseif s.name == "logging" or s.name == "tracing" then
      if s.label then
        problem(string.format("%s: a top-level block takes no label: write %s { ... }", s.name, s.name))
      elseif result[s.name] then
        problem(s.name .. ": declared twice")
      else
        local refs = {}
        env.positions, env.order, env.where = {}, {}, s.name .. ": "
        result[s.name] = { args = body_args(s.body, env, refs, problems), line = s.line, col = s.col, file = path,
          refs = refs, positions = env.positions }
      end
    elseif UNSUPPORTED_TOP[s.name] or s.name:match("^import%.") then
      problem(string.format("%s: not supported by moonwatch (%s)", s.name, UNSUPPORTED_TOP[s.name] or "modules"))
    elseif not s.label then
      problem(string.format("%s: a component needs a label: %s \"default\" { ... } (the top-level blocks without "
        .. "one are logging and tracing)", s.name, s.name))
    elseif not s.label:match("^[%a_][%w_]*$") then
      problem(string.format("%s %q: label must be an identifier (letters, digits, _)", s.name, s.label))
    else
      local id = s.name .. "." .. s.label
      if by_id[id] then
        problem(string.format("%s %q: already declared at %s:%d:%d", s.name, s.label, path, by_id[id].line,
          by_id[id].col))
      else
        local refs = {}
        local decl = { id = id, name = s.name, label = s.label, file = path, line = s.line, col = s.col, refs = refs }
        env.positions, env.order, env.where = {}, {}, string.format("%s %q: ", s.name, s.label)
        decl.args = body_args(s.body, env, refs, problems)
        decl.positions = env.positions
        by_id[id] = decl
        table.insert(result.declarations, decl)
      end
    end
  end
  return result
end

--- True when path names an Alloy configuration file (by its extension: .alloy, or .river,
--- the name of the same syntax in Grafana Agent Flow).
function M.is_alloy(path)
  return type(path) == "string" and (path:match("%.alloy$") ~= nil or path:match("%.river$") ~= nil)
end

return M
