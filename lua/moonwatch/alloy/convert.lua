--- moonwatch.alloy.convert: an Alloy configuration file written as a Lua pipeline that
-- declares the same graph (`moonwatch convert config.alloy`). The Lua takes the shapes
-- moonwatch.alloy.loader gives: blocks become tables, repeated blocks lists, `stage.X`
-- blocks positional `stage.X { ... }` entries, `local.` components `local_.`; an
-- expression that reads exports (other than a plain reference or concat over them) becomes
-- a function argument; Alloy's functions and operators are the pipeline's `alloy.*`
-- helpers (moonwatch.alloy.stdlib), so values are computed exactly as in the .alloy file.
-- Comments come along, before the statement they preceded (one inside an expression moves
-- before the next statement).
local parser = require("moonwatch.alloy.parser")
local loader = require("moonwatch.alloy.loader")
local stdlib = require("moonwatch.alloy.stdlib")

local M = {}

local KEYWORDS = {}
for w in ("and break do else elseif end false for function if in local nil not or repeat return then true "
  .. "until while goto"):gmatch("%S+") do
  KEYWORDS[w] = true
end

local function lua_string(s)
  return '"' .. s:gsub('[%c"\\\128-\255]', function(c)
    local b = c:byte()
    if c == "\\" or c == '"' then
      return "\\" .. c
    elseif c == "\n" then
      return "\\n"
    elseif c == "\t" then
      return "\\t"
    elseif b >= 128 then
      return c -- UTF-8 bytes as they are
    end
    return string.format("\\%03d", b)
  end) .. '"'
end

local function lua_key(k)
  if k:match("^[%a_][%w_]*$") and not KEYWORDS[k] then
    return k
  end
  return "[" .. lua_string(k) .. "]"
end

local function lua_number(n)
  if n ~= n then
    return "(0/0)"
  elseif n == math.huge then
    return "math.huge"
  elseif n == -math.huge then
    return "-math.huge"
  elseif n % 1 == 0 and math.abs(n) < 2 ^ 53 then
    return string.format("%d", n)
  end
  return string.format("%.17g", n)
end

-- A reference path in Lua: `local` is a keyword, written local_ (another keyword first
-- cannot be written: an error, raised as a table for M.convert).
local function ref_text(names, line, col)
  local parts = {}
  for i, n in ipairs(names) do
    if i == 1 and n == "local" then
      n = "local_"
    elseif i == 1 and KEYWORDS[n] then
      error({ line = line, col = col, msg = string.format("%s: a name starting with the Lua keyword %s cannot be "
        .. "written in a Lua pipeline", table.concat(names, "."), n) }, 0)
    end
    parts[i] = (i == 1 or (n:match("^[%a_][%w_]*$") and not KEYWORDS[n])) and n or ("[" .. lua_string(n) .. "]")
  end
  return (table.concat(parts, "."):gsub("%.%[", "["))
end

-- Operators are the alloy.* helpers the loader evaluates with (Lua's own would turn "5" * 2
-- into 10 and 1 / 0 into inf, short-circuit && and || where Alloy checks both sides are
-- bools, and a unary minus written as Lua's binds looser than ^ and makes a comment of - -x).

-- The Lua expression of e.
-- parts between open and close: on one line ("{ a, b }" with pad " ") when it fits in 100
-- characters, else one part a line, indented, each but the last followed by a comma (the last
-- by last).
local function wrap(parts, ind, open, close, pad, last)
  local one = open .. pad .. table.concat(parts, ", ") .. pad .. close
  if #one <= 100 and not one:find("\n") then
    return one
  end
  return open .. "\n" .. ind .. "  " .. table.concat(parts, ",\n" .. ind .. "  ") .. last .. "\n" .. ind .. close
end

-- A list or object as a Lua table constructor, its items (values) converted by conv(e, ind).
local function collection(e, ind, conv)
  local parts = {}
  if e.t == "list" then
    for i, x in ipairs(e.items) do
      if x.t == "null" then -- as the loader: { 1, nil } is a list of 1
        error({ line = x.line, col = x.col, msg = "a list cannot hold null in moonwatch" }, 0)
      end
      parts[i] = conv(x, ind .. "  ")
    end
  else
    for i, k in ipairs(e.keys) do
      parts[i] = lua_key(k) .. " = " .. conv(e.vals[i], ind .. "  ")
    end
  end
  if #parts == 0 then
    return "{}"
  end
  return wrap(parts, ind, "{", "}", " ", ",")
end

local function expr(e, ind)
  local t = e.t
  if t == "lit" then
    if type(e.v) == "string" then
      return lua_string(e.v)
    elseif type(e.v) == "number" then
      return lua_number(e.v)
    end
    return tostring(e.v)
  elseif t == "null" then
    return "nil"
  elseif t == "paren" then
    return "(" .. expr(e.e, ind) .. ")"
  elseif t == "list" or t == "object" then
    return collection(e, ind, expr)
  end
  local names = loader.chain(e)
  if names then
    return ref_text(names, e.line, e.col) -- a component's export, or constants.hostname and the like
  elseif t == "access" then
    return "alloy.field(" .. expr(e.obj, ind) .. ", " .. lua_string(e.name) .. ")"
  elseif t == "index" then
    return "alloy.index(" .. expr(e.obj, ind) .. ", " .. expr(e.idx, ind) .. ")"
  elseif t == "call" then
    local fnames = loader.chain(e.fn)
    local fname = fnames and table.concat(fnames, ".")
    if not (fname and stdlib.functions[fname]) then
      error({ line = e.line, col = e.col, msg = string.format("unknown function %s", fname or "(not a name)") }, 0)
    end
    local args = {}
    for i, x in ipairs(e.args) do
      args[i] = expr(x, ind)
    end
    local a = table.concat(args, ", ")
    if fname == "concat" or fname == "array.concat" then
      return "concat(" .. a .. ")" -- the pipeline's concat: lazy over references
    end
    return "alloy." .. fname .. "(" .. a .. ")"
  elseif t == "unary" then
    return "alloy.unary(" .. lua_string(e.op) .. ", " .. expr(e.e, ind) .. ")"
  elseif t == "binary" then
    local l, r = expr(e.l, ind), expr(e.r, ind)
    if e.op == "+" then -- numbers add, strings (and secrets) concatenate
      return "alloy.add(" .. l .. ", " .. r .. ")"
    elseif e.op == "==" then
      return "alloy.eq(" .. l .. ", " .. r .. ")"
    elseif e.op == "!=" then
      return "(not alloy.eq(" .. l .. ", " .. r .. "))"
    elseif e.op == "/" and stdlib.is_int_expr(e) then -- Alloy's integer division
      return "alloy.idiv(" .. l .. ", " .. r .. ")"
    end
    return "alloy.binary(" .. lua_string(e.op) .. ", " .. l .. ", " .. r .. ")"
  end
  return "nil"
end

-- An attribute's value: as the loader compiles it (a function where it makes one).
local function value(e, ind)
  while e.t == "paren" do
    e = e.e
  end
  local names = loader.chain(e)
  if e.t == "list" or e.t == "object" or (names and not loader.is_stdlib(names)) then
    if e.t == "list" or e.t == "object" then
      return collection(e, ind, value)
    end
    return expr(e, ind)
  end
  local refs = false
  loader.each_ref(e, function()
    refs = true
  end)
  if not refs then
    return expr(e, ind)
  end
  if e.t == "call" then
    local fname = table.concat(loader.chain(e.fn) or {}, ".")
    if fname == "concat" or fname == "array.concat" then
      local args = {}
      for i, x in ipairs(e.args) do
        args[i] = value(x, ind .. "  ")
      end
      return wrap(args, ind, "concat(", ")", "", "")
    end
  end
  return "function() return " .. expr(e, ind) .. " end"
end

-- Writes the comments written before line (all of them when line is nil) at indentation ind.
local function flush_comments(st, line, ind, out)
  local cs = st.comments
  while st.next <= #cs and (line == nil or cs[st.next].line < line) do
    -- Lua ends a line comment at \r too
    local text = cs[st.next].text:gsub("[\r\n]", " "):gsub("%s+$", "")
    out[#out + 1] = ind .. "--" .. (text:sub(1, 1) == " " and "" or (text == "" and "" or " ")) .. text
    st.next = st.next + 1
  end
end

-- Raises what the loader reports in a block body (a Lua table would keep one of two values
-- silently): an attribute set twice, a name both attribute and block, a nested label.
local function check_body(stmts, path)
  local kinds = {}
  for _, s in ipairs(stmts) do
    local p = path ~= "" and path .. "." .. s.name or s.name
    local function fail(msg)
      error({ line = s.line, col = s.col, msg = msg }, 0)
    end
    if s.kind == "attr" then
      if kinds[s.name] == "attr" then
        fail(p .. ": set twice in the same block")
      elseif kinds[s.name] then
        fail(p .. ": given both as an attribute and as a block")
      end
      kinds[s.name] = "attr"
    elseif s.label then
      fail(string.format("%s %q: a nested block takes no label", s.name, s.label))
    elseif not s.name:find(".", 1, true) then
      if kinds[s.name] == "attr" then
        fail(p .. ": given both as an attribute and as a block")
      end
      kinds[s.name] = "block"
    end
  end
end

local function body(stmts, ind, out, st, path)
  path = path or ""
  stmts = loader.nest(stmts)
  check_body(stmts, path)
  local groups = {} -- name -> the blocks of that name, in order
  for _, s in ipairs(stmts) do
    if s.kind == "block" and not s.name:find(".", 1, true) then
      groups[s.name] = groups[s.name] or {}
      table.insert(groups[s.name], s)
    end
  end
  local done = {}
  for _, s in ipairs(stmts) do
    flush_comments(st, s.line, ind, out)
    if s.kind == "attr" then
      out[#out + 1] = ind .. lua_key(s.name) .. " = " .. value(s.value, ind) .. ","
    elseif s.name:find(".", 1, true) then
      local parts = {}
      for p in s.name:gmatch("[^.]+") do
        parts[#parts + 1] = p
      end
      out[#out + 1] = ind .. ref_text(parts, s.line, s.col) .. " {"
      body(s.body, ind .. "  ", out, st, s.name)
      out[#out + 1] = ind .. "},"
    elseif not done[s.name] then
      done[s.name] = true
      local g = groups[s.name]
      if #g == 1 then
        out[#out + 1] = ind .. lua_key(s.name) .. " = {"
        body(s.body, ind .. "  ", out, st, path ~= "" and path .. "." .. s.name or s.name)
        out[#out + 1] = ind .. "},"
      else
        out[#out + 1] = ind .. lua_key(s.name) .. " = {"
        for k, b in ipairs(g) do
          out[#out + 1] = ind .. "  {"
          body(b.body, ind .. "    ", out, st, string.format("%s[%d]", path ~= "" and path .. "." .. s.name or s.name, k))
          out[#out + 1] = ind .. "  },"
        end
        out[#out + 1] = ind .. "},"
      end
    end
  end
end

--- The Lua pipeline equivalent to an Alloy configuration.
---@param src string the Alloy text
---@param file string its name (messages, the header comment)
---@return string|nil lua
---@return string|nil err "file:line:col: message"
function M.convert(src, file)
  local comments = {}
  local stmts, err = parser.parse(src, file, comments)
  if not stmts then
    return nil, err
  end
  local ok, res = pcall(M.write, stmts, file, comments)
  if ok then
    -- Lua's parser nests less deeply than Alloy's allows (about 200 levels of brackets and calls)
    local chunk, lerr = loadstring(res, "=converted")
    if not chunk then
      return nil, string.format("%s:1:1: cannot be written as a Lua pipeline: %s", file, lerr)
    end
    return res
  elseif type(res) == "table" and res.msg then
    return nil, string.format("%s:%d:%d: %s", file, res.line, res.col, res.msg)
  end
  error(res, 0)
end

--- The Lua text of parsed statements, with the comments (from parser.parse) before the
--- statements they preceded (raises { line, col, msg } for what Lua cannot say).
function M.write(stmts, file, comments)
  local out = { "-- Converted from " .. file .. " by `moonwatch convert`." }
  local st = { comments = comments or {}, next = 1 }
  local seen = {} -- "name label" -> the block declaring it
  for _, s in ipairs(stmts) do
    out[#out + 1] = ""
    flush_comments(st, s.line, "", out)
    if s.kind == "attr" then
      error({ line = s.line, col = s.col, msg = s.name .. ": an attribute is not allowed at the top level (only "
        .. "blocks)" }, 0)
    end
    local key = s.name .. (s.label and (" " .. s.label) or "")
    local first = seen[key]
    if first and s.label then
      error({ line = s.line, col = s.col, msg = string.format("%s %q: already declared at %s:%d:%d", s.name, s.label,
        file, first.line, first.col) }, 0)
    elseif first and (s.name == "logging" or s.name == "tracing") then
      error({ line = s.line, col = s.col, msg = s.name .. ": declared twice" }, 0)
    end
    seen[key] = s
    local parts = {}
    for p in s.name:gmatch("[^.]+") do
      parts[#parts + 1] = p
    end
    local name = ref_text(parts, s.line, s.col)
    local head = s.label and (name .. " " .. lua_string(s.label)) or name
    if #s.body == 0 then
      out[#out + 1] = head .. " {}"
    else
      out[#out + 1] = head .. " {"
      body(s.body, "  ", out, st)
      out[#out + 1] = "}"
    end
  end
  flush_comments(st, nil, "", out)
  return table.concat(out, "\n") .. "\n"
end

return M
