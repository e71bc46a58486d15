--- moonwatch.redact: no secret of a pipeline in what moonwatch shows or writes.
-- Everything a user or another program may read — log lines, health messages, the debug
-- API and the UI, a reload's answer, `check`'s problems, metric labels — passes through
-- here on its way out:
--   * M.url(s): the password of a URL's userinfo shows as xxxxx (http://user:xxxxx@host/),
--     as Prometheus (Go's url.Redacted) shows it; for metric labels.
--   * M.text(s): M.url, then credentials that look like credentials (Basic and Bearer
--     tokens, the value of an Authorization or Proxy-Authorization header however it is
--     quoted), then every configured secret still in use (each `secret`-typed argument —
--     passwords, tokens, header values — and the derived ones registered with M.register:
--     a URL's password, basic credentials as base64) are replaced by xxxxx.
--   * M.value(v): a copy of a JSON-ready value with M.text applied to its strings.
--   * M.excerpt(body): what may be said of a body a server answered with (an error page
--     can echo the request's headers): at most EXCERPT_MAX bytes, control characters
--     removed, credentials and secrets masked.
-- Secrets are registered by their owner (a schema secret, a client, an endpoint) and
-- forgotten when the owner is collected, so a secret of a pipeline that was reloaded away
-- stops being searched for. Secrets shorter than MIN_SECRET_LEN bytes are not searched
-- for (they would mask ordinary words).
local M = {}

M.MASK = "xxxxx"
M.MIN_SECRET_LEN = 4
M.EXCERPT_MAX = 256

-- owner -> secret string or list of them (weak keys: dropped with their owner)
local owners = setmetatable({}, { __mode = "k" })
local sorted -- the distinct secrets, longest first (nil: to be rebuilt)
-- a key only this table holds: gone after each garbage collection cycle, which may have
-- taken owners with it, so the list is then rebuilt
local probe = setmetatable({}, { __mode = "k" })

--- Registers a secret string (and nothing when it is too short to search for) for as long
--- as owner lives.
---@param owner table
---@param value any a string (anything else is ignored)
function M.register(owner, value)
  if type(value) ~= "string" or #value < M.MIN_SECRET_LEN then
    return
  end
  local cur = owners[owner]
  if cur == nil then
    owners[owner] = value
  elseif type(cur) == "string" then
    if cur == value then
      return
    end
    owners[owner] = { cur, value }
  else
    for _, v in ipairs(cur) do
      if v == value then
        return
      end
    end
    cur[#cur + 1] = value
  end
  sorted = nil
end

local function secrets()
  if sorted and next(probe) ~= nil then
    return sorted
  end
  probe[{}] = true
  local seen, list = {}, {}
  for _, v in pairs(owners) do
    if type(v) == "string" then
      if not seen[v] then
        seen[v], list[#list + 1] = true, v
      end
    else
      for _, x in ipairs(v) do
        if not seen[x] then
          seen[x], list[#list + 1] = true, x
        end
      end
    end
  end
  table.sort(list, function(a, b)
    return #a > #b or (#a == #b and a < b)
  end)
  sorted = list
  return list
end

--- The secrets searched for now (for tests).
function M.registered()
  return secrets()
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

--- Standard base64 (with padding) of s.
---@param s string
---@return string
function M.base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1, c2 = math.floor(n / 262144) % 64, math.floor(n / 4096) % 64
    local c3, c4 = math.floor(n / 64) % 64, n % 64
    out[#out + 1] = B64:sub(c1 + 1, c1 + 1) .. B64:sub(c2 + 1, c2 + 1)
      .. (b and B64:sub(c3 + 1, c3 + 1) or "=") .. (c and B64:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end

--- Registers, for owner, the secrets of a URL: its userinfo's password as written and
--- decoded, and the basic credentials made of them (base64 of user:password) that an HTTP
--- client sends for it.
---@param owner table
---@param url any
function M.register_url(owner, url)
  if type(url) ~= "string" then
    return
  end
  local user, pass = url:match("^%a[%w+.-]*://([^/?#@]*):([^/?#]*)@")
  if not user then
    return
  end
  M.register(owner, pass)
  M.register(owner, unescape(pass))
  M.register(owner, M.base64(unescape(user) .. ":" .. unescape(pass)))
end

--- Registers the basic credentials of username and password (base64 of user:password) for owner.
function M.register_basic(owner, username, password)
  if type(password) == "string" and password ~= "" then
    M.register(owner, M.base64((type(username) == "string" and username or "") .. ":" .. password))
  end
end

--- s with the password of every URL in it replaced by xxxxx (http://user:xxxxx@host/...).
---@param s string
---@return string
function M.url(s)
  if not s:find("@", 1, true) then
    return s
  end
  return (s:gsub("(%a[%w+.-]*://[^/?#@%s:\"'<>]*):[^/?#@%s\"'<>]*@", "%1:" .. M.MASK .. "@"))
end

-- a pattern that matches word case-insensitively
local function nocase(word)
  return (word:gsub("%a", function(c)
    return "[" .. c:upper() .. c:lower() .. "]"
  end))
end

-- The value of an Authorization (or Proxy-Authorization) header, however it is written
-- (a header line, JSON, Go's map printing): its first word, and the next one when the first
-- is a scheme ("Basic", "Bearer", ...).
local AUTH_HEADER = "(" .. nocase("authorization") .. "[\"']?%s*[:=]%s*[%[%s\"']*)([^%s\"'%],}]+)(%s*)([^%s\"'%],}]*)"

local function auth_mask(prefix, first, space, second)
  if first == M.MASK then
    return nil
  end
  if first:find("^%a[%w%-]*$") and #first <= 16 and space ~= "" and second ~= "" then
    if second == M.MASK then
      return nil
    end
    return prefix .. first .. " " .. M.MASK -- the scheme stays: which kind of credential
  end
  return prefix .. M.MASK .. space .. second
end

local SCHEME_TOKEN = {
  "(%f[%a]" .. nocase("basic") .. "%s+)([%w+/]+=*)",
  "(%f[%a]" .. nocase("bearer") .. "%s+)([%w%-%._~+/]+=*)",
}

-- A word after Basic or Bearer is a credential unless it reads as an ordinary word
-- ("basic authentication"): short, or letters only with no capital after the first.
local function token_mask(prefix, tok)
  if #tok < 8 or not (tok:find("[^%a]") or tok:sub(2):find("%u")) then
    return nil
  end
  return prefix .. M.MASK
end

local function escape_pattern(s)
  return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

--- s with URL passwords, credentials and the registered secrets masked (see the module comment).
---@param s string
---@return string
function M.text(s)
  if type(s) ~= "string" then
    return s
  end
  s = M.url(s)
  s = s:gsub(AUTH_HEADER, auth_mask)
  for _, p in ipairs(SCHEME_TOKEN) do
    s = s:gsub(p, token_mask)
  end
  for _, v in ipairs(secrets()) do
    if s:find(v, 1, true) then
      s = s:gsub(escape_pattern(v), M.MASK)
    end
  end
  return s
end

--- A copy of v (a JSON-ready value: tables, strings, numbers...) with M.text applied to every
--- string value; keys and metatables (JSON array marks) are kept.
---@param v any
---@return any
function M.value(v)
  if type(v) == "string" then
    return M.text(v)
  elseif type(v) == "table" then
    local out = setmetatable({}, getmetatable(v))
    for k, x in pairs(v) do
      out[k] = M.value(x)
    end
    return out
  end
  return v
end

--- A short, clean excerpt of a body a server answered with: credentials and secrets masked,
--- every run of control characters one space, at most max bytes (EXCERPT_MAX; "..." marks a
--- cut, never inside a UTF-8 character). Only the body's first max * 16 bytes are read; a
--- secret cut at their end is dropped, not shown in part.
---@param body any
---@param max integer|nil
---@return string
function M.excerpt(body, max)
  max = max or M.EXCERPT_MAX
  if type(body) ~= "string" then
    return ""
  end
  local window = body:sub(1, max * 16)
  local s = M.text((window:gsub("%c+", "\n")))
  local cut_short = #window < #body
  if cut_short then
    -- what may be the start of a secret that goes on past the window
    local longest = secrets()[1]
    s = s:sub(1, #s - (longest and #longest or 0))
  end
  s = s:gsub("\n", " "):gsub("^%s+", ""):gsub("%s+$", "")
  if #s > max or cut_short then
    local cut = math.min(#s, max)
    -- not inside a UTF-8 sequence: back to the start of the character at the cut
    while cut > 0 and cut < #s and s:byte(cut + 1) >= 0x80 and s:byte(cut + 1) < 0xC0 do
      cut = cut - 1
    end
    s = s:sub(1, cut) .. "..."
  end
  return s
end

return M
