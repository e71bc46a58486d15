--- moonwatch.alloy.parser: Grafana Alloy's configuration syntax, parsed into a tree.
-- A hand-written scanner and recursive-descent parser (no dependency, errors that name
-- line and column exactly). The tree:
--   body  = list of statements
--   { kind = "attr", name = "url", value = expr, line, col }
--   { kind = "block", name = "prometheus.scrape", label = "x" | nil, body = body, line, col }
--   expr  = { t = "lit", v = string|number|boolean, float = true|nil } | { t = "null" }
--           (float: a number written as Alloy's floats, with a fraction or an exponent)
--         | { t = "list", items = {expr...} } | { t = "object", keys = {string...}, vals = {expr...} }
--         | { t = "ident", name } | { t = "access", obj = expr, name } | { t = "index", obj, idx }
--         | { t = "call", fn = expr, args = {expr...} } | { t = "unary", op, e } | { t = "binary", op, l, r }
--         | { t = "paren", e }
--   every expr also has line and col.
-- Bounds: the source is at most MAX_SIZE bytes, brackets and blocks nest at most
-- MAX_DEPTH deep, an expression's tree (`a + b + ...`, `x[0][0]...`) is at most
-- MAX_EXPR_DEPTH deep (what evaluates and converts it recurses on it); beyond any the
-- parse fails with a message, never a Lua stack overflow.
local M = {}

M.MAX_SIZE = 2 * 1024 * 1024 -- a large real configuration is a few hundred KB
M.MAX_DEPTH = 100
M.MAX_EXPR_DEPTH = 1000 -- depth of an expression's tree: chained operators, indexes, calls

local byte, sub, char = string.byte, string.sub, string.char

-- A parse error: raised as a table, turned into "file:line:col: message" by M.parse.
local ParseError = {}

local function fail(line, col, msg)
  error(setmetatable({ line = line, col = col, msg = msg }, ParseError), 0)
end

local function utf8_char(cp)
  if cp < 0x80 then
    return char(cp)
  elseif cp < 0x800 then
    return char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40)
  elseif cp < 0x10000 then
    return char(0xE0 + math.floor(cp / 0x1000), 0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end
  return char(0xF0 + math.floor(cp / 0x40000), 0x80 + math.floor(cp / 0x1000) % 0x40,
    0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local SIMPLE_ESCAPES = { a = "\a", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", v = "\v",
  ["\\"] = "\\", ['"'] = '"' }

-- Operators and punctuation, longest first.
local PUNCT2 = { ["=="] = true, ["!="] = true, ["<="] = true, [">="] = true, ["&&"] = true, ["||"] = true }
local PUNCT1 = {}
for c in ("{}[](),.=<>+-*/%^!"):gmatch(".") do
  PUNCT1[c] = true
end

--- A scanner of src: each call returns its next token, { type = "ident"|"string"|"number"|
--- "punct"|"eof", v, line, col, nl } (nl: a newline came before the token); tokens are
--- made one at a time, so a big file never holds them all.
local function scanner(src, comments)
  local i, n = 1, #src
  local line, line_start = 1, 1
  if sub(src, 1, 3) == "\239\187\191" then -- a UTF-8 byte order mark first: skipped, as Alloy's scanner
    i, line_start = 4, 4
  end
  local nl = false
  return function()
    -- whitespace and comments
    while i <= n do
      local c = byte(src, i)
      if c == 10 then
        line, line_start, nl = line + 1, i + 1, true
        i = i + 1
      elseif c == 32 or c == 9 or c == 13 then
        i = i + 1
      elseif c == 47 and byte(src, i + 1) == 47 then -- //
        local s0 = i
        while i <= n and byte(src, i) ~= 10 do
          i = i + 1
        end
        if comments then
          comments[#comments + 1] = { line = line, text = sub(src, s0 + 2, i - 1) }
        end
      elseif c == 47 and byte(src, i + 1) == 42 then -- /*
        local l0, c0, s0 = line, i - line_start + 1, i
        i = i + 2
        while true do
          if i > n then
            fail(l0, c0, "comment not terminated (missing */)")
          end
          local d = byte(src, i)
          if d == 42 and byte(src, i + 1) == 47 then
            i = i + 2
            if comments then
              for text in (sub(src, s0 + 2, i - 3) .. "\n"):gmatch("(.-)\r?\n") do
                comments[#comments + 1] = { line = l0, text = text }
              end
            end
            break
          elseif d == 10 then
            line, line_start, nl = line + 1, i + 1, true
          end
          i = i + 1
        end
      else
        break
      end
    end
    local col = i - line_start + 1
    if i > n then
      return { type = "eof", line = line, col = col, nl = true }
    end
    local c = byte(src, i)
    local tok = { line = line, col = col, nl = nl }
    nl = false
    if (c >= 65 and c <= 90) or (c >= 97 and c <= 122) or c == 95 then
      local j = i
      while j <= n do
        local d = byte(src, j)
        if (d >= 65 and d <= 90) or (d >= 97 and d <= 122) or d == 95 or (d >= 48 and d <= 57) then
          j = j + 1
        else
          break
        end
      end
      tok.type, tok.v = "ident", sub(src, i, j - 1)
      i = j
    elseif (c >= 48 and c <= 57) or (c == 46 and src:find("^%d", i + 1)) then
      -- Alloy's numbers: digits, a fraction (".5", "1." too), an exponent; no hexadecimal
      local s, e = src:find("^%d*%.?%d*", i)
      local es, ee = src:find("^[eE][+-]?%d+", e + 1)
      if es then
        e = ee
      elseif src:find("^[eE]", e + 1) then
        fail(line, col, "malformed number: exponent has no digits")
      end
      local text = sub(src, s, e)
      if src:find("^[%w_]", e + 1) then
        fail(line, col, "malformed number " .. text .. sub(src, e + 1, e + 1))
      end
      tok.type, tok.v = "number", tonumber(text)
      tok.float = text:find("[.eE]") ~= nil or nil
      if text:find("^0[0-7]+$") then -- as Alloy reads an integer (Go's ParseInt with base 0): 0644 is octal
        tok.v = tonumber(text, 8)
      elseif text:find("^%d+$") and tok.v and tok.v >= 2 ^ 53 and tok.v < 2 ^ 64
        and string.format("%.0f", tok.v) ~= text:gsub("^0+", "") then
        -- Alloy holds it exactly (int64 or uint64), a Lua number would change it
        fail(line, col, string.format("integer %s cannot be held exactly (moonwatch's numbers are exact up to 2^53 = "
          .. "9007199254740992)", text))
      end
      if not tok.v then
        fail(line, col, "malformed number " .. text)
      end
      i = e + 1
    elseif c == 34 then -- "interpreted string" with Go's escapes
      local parts = {}
      local j = i + 1
      while true do
        local d = byte(src, j)
        if d == nil or d == 10 then
          fail(line, col, "string not terminated (missing \")")
        elseif d == 34 then
          break
        elseif d == 92 then
          local e = sub(src, j + 1, j + 1)
          local ecol = j - line_start + 1
          if SIMPLE_ESCAPES[e] then
            parts[#parts + 1] = SIMPLE_ESCAPES[e]
            j = j + 2
          elseif e == "x" or e == "u" or e == "U" then
            local len = e == "x" and 2 or e == "u" and 4 or 8
            local hex = sub(src, j + 2, j + 1 + len)
            if #hex ~= len or not hex:find("^%x+$") then
              fail(line, ecol, string.format("invalid escape \\%s: expected %d hex digits", e, len))
            end
            local cp = tonumber(hex, 16)
            if e == "x" then
              parts[#parts + 1] = char(cp)
            else
              if cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then
                fail(line, ecol, "invalid escape \\" .. e .. hex .. ": not a Unicode code point")
              end
              parts[#parts + 1] = utf8_char(cp)
            end
            j = j + 2 + len
          elseif e:find("^[0-7]$") then
            local oct = sub(src, j + 1, j + 3)
            if not oct:find("^[0-7][0-7][0-7]$") or tonumber(oct, 8) > 255 then
              fail(line, ecol, "invalid escape \\" .. oct .. ": expected 3 octal digits (at most \\377)")
            end
            parts[#parts + 1] = char(tonumber(oct, 8))
            j = j + 4
          else
            fail(line, ecol, "unknown escape sequence \\" .. (e == "\n" and "<newline>" or e))
          end
        else
          local k = j
          while true do
            local x = byte(src, k)
            if x == nil or x == 10 or x == 34 or x == 92 then
              break
            end
            k = k + 1
          end
          parts[#parts + 1] = sub(src, j, k - 1)
          j = k
        end
      end
      tok.type, tok.v = "string", table.concat(parts)
      i = j + 1
    elseif c == 96 then -- `raw string`, may span lines
      local e = src:find("`", i + 1, true)
      if not e then
        fail(line, col, "raw string not terminated (missing `)")
      end
      tok.type, tok.v, tok.raw = "string", sub(src, i + 1, e - 1), true
      for p in tok.v:gmatch("()\n") do
        line, line_start = line + 1, i + p + 1
      end
      tok.v = tok.v:gsub("\r", "") -- as Go's Unquote of a raw string (a file saved with CRLF)
      i = e + 1
    else
      local two = sub(src, i, i + 1)
      if PUNCT2[two] then
        tok.type, tok.v = "punct", two
        i = i + 2
      elseif PUNCT1[char(c)] then
        tok.type, tok.v = "punct", char(c)
        i = i + 1
      else
        local shown = (c < 32 or c > 126) and string.format("byte 0x%02x", c) or string.format("%q", char(c))
        fail(line, col, "unexpected character " .. shown)
      end
    end
    tok.eline, tok.ecol = line, i - line_start + 1 -- just after the token
    return tok
  end
end

-- Binary operators: precedence (higher binds tighter), as Alloy's.
local BINARY = { ["||"] = 1, ["&&"] = 2, ["=="] = 3, ["!="] = 3, ["<"] = 3, ["<="] = 3, [">"] = 3, [">="] = 3,
  ["+"] = 4, ["-"] = 4, ["*"] = 5, ["/"] = 5, ["%"] = 5, ["^"] = 6 }

local Parser = {}
Parser.__index = Parser

function Parser:peek()
  return self.cur
end

function Parser:next()
  local t = self.cur
  if t.type ~= "eof" then
    self.cur = self.lex()
    self.prev = t
  end
  return t
end

local function describe(t)
  if t.type == "eof" then
    return "end of file"
  elseif t.type == "string" then
    return "string " .. string.format("%q", #t.v > 30 and t.v:sub(1, 30) .. "..." or t.v)
  elseif t.type == "number" then
    return "number " .. tostring(t.v)
  elseif t.type == "ident" then
    return "identifier " .. t.v
  end
  return "'" .. t.v .. "'"
end

function Parser:is(v)
  local t = self.cur
  return t.type == "punct" and t.v == v
end

function Parser:expect(v, what)
  local t = self:peek()
  if t.type ~= "punct" or t.v ~= v then
    fail(t.line, t.col, string.format("expected '%s'%s, got %s", v, what and (" " .. what) or "", describe(t)))
  end
  return self:next()
end

function Parser:enter(t)
  self.depth = self.depth + 1
  if self.depth > M.MAX_DEPTH then
    fail(t.line, t.col, string.format("nested too deeply (more than %d levels)", M.MAX_DEPTH))
  end
end

function Parser:leave()
  self.depth = self.depth - 1
end

-- node, with its tree depth d = 1 + its deepest child's (a, b and the elements of list), bounded.
local function deepen(node, a, b, list)
  local d = math.max(a and a.d or 1, b and b.d or 1)
  for _, c in ipairs(list or {}) do
    if (c.d or 1) > d then
      d = c.d or 1
    end
  end
  node.d = d + 1
  if node.d > M.MAX_EXPR_DEPTH then
    fail(node.line, node.col, string.format("expression too deep (more than %d operators, indexes or calls "
      .. "chained)", M.MAX_EXPR_DEPTH))
  end
  return node
end

-- A statement ends at a newline, a '}' or the end of the file (Alloy has no ';').
function Parser:end_statement(what)
  local t = self:peek()
  if not t.nl and not (t.type == "punct" and t.v == "}") and t.type ~= "eof" then
    fail(t.line, t.col, string.format("expected a newline after %s, got %s", what, describe(t)))
  end
end

--- body := { attr | block }, until '}' (inner) or eof (top).
function Parser:body(inner)
  local out = {}
  while true do
    local t = self:peek()
    if t.type == "eof" then
      if inner then
        fail(inner.line, inner.col, "block not closed (missing '}')")
      end
      return out
    elseif t.type == "punct" and t.v == "}" then
      if not inner then
        fail(t.line, t.col, "unexpected '}' (no block open)")
      end
      return out
    elseif t.type ~= "ident" then
      fail(t.line, t.col, "expected an attribute (name = value) or a block (name { ... }), got " .. describe(t))
    else
      out[#out + 1] = self:statement()
    end
  end
end

-- As Alloy's scanner, a newline after a name, a value or a closing bracket ends the
-- statement (it is a terminator): what follows on the next line cannot continue it.
function Parser:no_newline(what)
  local t = self.cur
  if t.nl and t.type ~= "eof" then
    fail(self.prev.eline, self.prev.ecol, string.format("unexpected newline %s", what))
  end
end

function Parser:statement()
  local first = self:next()
  local names = { first.v }
  while self:is(".") and not self.cur.nl do
    self:next()
    local t = self:next()
    if t.type ~= "ident" then
      fail(t.line, t.col, "expected a name after '.', got " .. describe(t))
    end
    names[#names + 1] = t.v
  end
  local name = table.concat(names, ".")
  self:no_newline("after " .. name .. " (a statement ends at the end of its line: write name = value, or "
    .. "name { on one line)")
  local t = self:peek()
  if t.type == "punct" and t.v == "=" then
    if #names > 1 then
      fail(first.line, first.col, string.format("attribute name %s must be a single identifier (a block needs "
        .. "{ ... })", name))
    end
    self:next()
    local value = self:expr()
    self:end_statement("the attribute " .. name)
    return { kind = "attr", name = name, value = value, line = first.line, col = first.col }
  end
  local label
  if t.type == "string" then
    if t.raw then
      fail(t.line, t.col, "a block's label is a double-quoted string, got a raw string")
    end
    label = t.v
    self:next()
    if self:is("=") then
      fail(t.line, t.col, string.format("an attribute takes no label: write %s = value, or %s %q { ... } for a block",
        name, name, label))
    end
    self:no_newline(string.format("after the label of %s (write the '{' on the same line)", name))
    t = self:peek()
  end
  if not (t.type == "punct" and t.v == "{") then
    fail(t.line, t.col, string.format("expected '=' or '{' after %s, got %s", name, describe(t)))
  end
  self:next()
  local block = { kind = "block", name = name, label = label, line = first.line, col = first.col }
  self:enter(first)
  block.body = self:body(block)
  self:leave()
  self:expect("}")
  self:end_statement("the block " .. name)
  return block
end

function Parser:expr(min_prec)
  min_prec = min_prec or 1
  local left = self:unary()
  while true do
    local t = self:peek()
    local prec = t.type == "punct" and BINARY[t.v]
    if not prec or prec < min_prec or t.nl then -- an operator on the next line does not continue
      return left
    end
    self:next()
    -- ^ is right-associative; the others left-associative
    local right = self:expr(t.v == "^" and prec or prec + 1)
    left = deepen({ t = "binary", op = t.v, l = left, r = right, line = t.line, col = t.col }, left, right)
  end
end

function Parser:unary()
  local t = self:peek()
  if t.type == "punct" and (t.v == "!" or t.v == "-") then
    self:next()
    self:enter(t)
    local e = self:unary()
    self:leave()
    return deepen({ t = "unary", op = t.v, e = e, line = t.line, col = t.col }, e)
  end
  return self:postfix()
end

-- Comma-separated items until close; newlines are free, a trailing comma allowed. (Alloy
-- wants a comma after the last item when the bracket closes on a later line; moonwatch
-- does not: the reference guide's examples leave it out, and the meaning is the same.)
function Parser:items(close, item)
  local out = {}
  while not self:is(close) do
    out[#out + 1] = item()
    if self:is(",") then
      self:next()
    elseif not self:is(close) then
      local t = self:peek()
      fail(t.line, t.col, string.format("expected ',' or '%s', got %s", close, describe(t)))
    end
  end
  self:next()
  return out
end

function Parser:postfix()
  local e = self:primary()
  while true do
    local t = self:peek()
    if t.type ~= "punct" then
      return e
    end
    if t.nl then -- a newline ends the expression (Alloy's terminator)
      return e
    end
    if t.v == "." then
      self:next()
      local n = self:next()
      if n.type ~= "ident" then
        fail(n.line, n.col, "expected a field name after '.', got " .. describe(n))
      end
      e = deepen({ t = "access", obj = e, name = n.v, line = e.line, col = e.col }, e) -- where the chain starts
    elseif t.v == "[" then
      self:next()
      self:enter(t)
      local idx = self:expr()
      self:leave()
      self:expect("]", "to close the index")
      e = deepen({ t = "index", obj = e, idx = idx, line = e.line, col = e.col }, e, idx)
    elseif t.v == "(" then
      self:next()
      self:enter(t)
      local args = self:items(")", function()
        return self:expr()
      end)
      self:leave()
      e = deepen({ t = "call", fn = e, args = args, line = e.line, col = e.col }, e, nil, args)
    else
      return e
    end
  end
end

function Parser:primary()
  local t = self:next()
  if t.type == "string" or t.type == "number" then
    return { t = "lit", v = t.v, float = t.float, line = t.line, col = t.col }
  elseif t.type == "ident" then
    if t.v == "true" or t.v == "false" then
      return { t = "lit", v = t.v == "true", line = t.line, col = t.col }
    elseif t.v == "null" then
      return { t = "null", line = t.line, col = t.col }
    end
    return { t = "ident", name = t.v, line = t.line, col = t.col }
  elseif t.type == "punct" and t.v == "[" then
    self:enter(t)
    local items = self:items("]", function()
      return self:expr()
    end)
    self:leave()
    return deepen({ t = "list", items = items, line = t.line, col = t.col }, nil, nil, items)
  elseif t.type == "punct" and t.v == "{" then
    self:enter(t)
    local keys, vals, seen = {}, {}, {}
    self:items("}", function()
      local k = self:next()
      if k.type ~= "ident" and k.type ~= "string" then
        fail(k.line, k.col, "expected an object key (a name or a string), got " .. describe(k))
      end
      if seen[k.v] then
        fail(k.line, k.col, string.format("duplicate object key %q", k.v))
      end
      seen[k.v] = true
      self:expect("=", "after the object key " .. k.v)
      keys[#keys + 1] = k.v
      vals[#vals + 1] = self:expr()
    end)
    self:leave()
    return deepen({ t = "object", keys = keys, vals = vals, line = t.line, col = t.col }, nil, nil, vals)
  elseif t.type == "punct" and t.v == "(" then
    self:enter(t)
    local e = self:expr()
    self:leave()
    self:expect(")", "to close the parenthesis")
    return deepen({ t = "paren", e = e, line = t.line, col = t.col }, e)
  end
  fail(t.line, t.col, "expected a value, got " .. describe(t))
end

--- Parses Alloy configuration text.
---@param src string
---@param file string the name in messages
---@param comments table|nil a list that gets the comments, { line = n, text = "..." } each
---@return table|nil body the statements, or nil
---@return string|nil err "file:line:col: message"
function M.parse(src, file, comments)
  if #src > M.MAX_SIZE then
    return nil, string.format("%s:1:1: file too large (%d bytes; at most %d)", file, #src, M.MAX_SIZE)
  end
  local ok, res = pcall(function()
    local lex = scanner(src, comments)
    local p = setmetatable({ lex = lex, cur = lex(), depth = 0 }, Parser)
    return p:body(nil)
  end)
  if ok then
    return res
  end
  if getmetatable(res) == ParseError then
    return nil, string.format("%s:%d:%d: %s", file, res.line, res.col, res.msg)
  end
  error(res, 0) -- a bug of the parser
end

return M
