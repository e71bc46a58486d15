--- moonwatch.oauth2: OAuth 2.0 client credentials tokens for moonwatch.http_client.
-- Like Go's golang.org/x/oauth2/clientcredentials (what Prometheus and Alloy
-- use): a POST to token_url with grant_type=client_credentials, the scopes and
-- endpoint_params in the form body, client_id and client_secret (or the
-- contents of client_secret_file, read at each fetch) as HTTP basic auth,
-- both URL-encoded first. The token is cached until 10 s before it expires;
-- tasks asking while a fetch is under way wait for that one fetch.
--
--   local src = oauth2.new({ client_id = "id", client_secret = secret, token_url = "https://..." })
--   local tok, err = src:token()   -- from a task: { access_token, type = "Bearer", expiry }
local scheduler = require("moonwatch.scheduler")
local redact = require("moonwatch.redact")
local cjson = require("cjson")

local M = {}

--- Seconds before expiry at which a cached token is renewed (Go's expiryDelta).
M.EXPIRY_DELTA = 10

local urlencode = require("moonwatch.http_client").urlencode
M.urlencode = urlencode

local function urldecode(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end

--- Encodes a table of fields as application/x-www-form-urlencoded (keys sorted).
---@param fields table<string, string>
---@return string
function M.form_encode(fields)
  local keys = require("moonwatch.schema").sorted_keys(fields)
  local out = {}
  for i, k in ipairs(keys) do
    out[i] = urlencode(k) .. "=" .. urlencode(fields[k])
  end
  return table.concat(out, "&")
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then
    return nil, err
  end
  local s = f:read("*a")
  f:close()
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- Parses a token response body (JSON, or form-encoded as some servers send).
local function parse_token(body, content_type)
  local t
  if (content_type or ""):find("application/x-www-form-urlencoded", 1, true)
    or (content_type or ""):find("text/plain", 1, true) then
    t = {}
    for k, v in body:gmatch("([^&=]+)=([^&]*)") do
      t[urldecode(k)] = urldecode(v)
    end
  else
    local ok, v = pcall(cjson.decode, body)
    if not ok or type(v) ~= "table" then
      return nil, "oauth2: cannot parse token response: " .. tostring(ok and "not an object" or v)
    end
    t = v
  end
  if type(t.access_token) ~= "string" or t.access_token == "" then
    return nil, "oauth2: server response missing access_token"
  end
  return t
end

local Source = {}
Source.__index = Source
Source.__tostring = function()
  return "oauth2 token source"
end

--- A token source for an Alloy oauth2 block: client_id, client_secret (string or
--- secret), client_secret_file, scopes, token_url, endpoint_params, tls_config,
--- proxy_url, no_proxy, proxy_from_environment, proxy_connect_header.
---@param cfg table
---@return table source
function M.new(cfg)
  return setmetatable({ cfg = cfg, gen = 0 }, Source)
end

-- One token request; returns token, or nil, err.
function Source:fetch()
  local http_client = require("moonwatch.http_client")
  local cfg = self.cfg
  local secret = http_client.reveal(cfg.client_secret) or ""
  if cfg.client_secret_file and cfg.client_secret_file ~= "" then
    local s, err = read_file(cfg.client_secret_file)
    if not s then
      return nil, "oauth2: unable to read client_secret_file: " .. tostring(err)
    end
    secret = s
    redact.register(self, s) -- while this source lives, the file's secret is masked too
    redact.register_basic(self, urlencode(cfg.client_id or ""), urlencode(s))
  end
  local form = { grant_type = "client_credentials" }
  if cfg.scopes and #cfg.scopes > 0 then
    form.scope = table.concat(cfg.scopes, " ")
  end
  for k, v in pairs(cfg.endpoint_params or {}) do
    form[k] = v
  end
  local client_cfg = {
    tls_config = cfg.tls_config, proxy_url = cfg.proxy_url, no_proxy = cfg.no_proxy,
    proxy_from_environment = cfg.proxy_from_environment, proxy_connect_header = cfg.proxy_connect_header,
    basic_auth = { username = urlencode(cfg.client_id or ""), password = urlencode(secret) },
  }
  local opts = http_client.options(client_cfg, {
    url = cfg.token_url, method = "POST", body = M.form_encode(form), timeout = cfg.timeout or 30,
    headers = { ["Content-Type"] = "application/x-www-form-urlencoded", Accept = "application/json" },
    max_body = 1024 * 1024,
  })
  local resp, err = http_client.perform(opts)
  if not resp then
    return nil, "oauth2: cannot fetch token: " .. err
  end
  if resp.status < 200 or resp.status > 299 then
    -- an error page may echo the request (its client credentials): a short, clean excerpt only
    return nil, string.format("oauth2: cannot fetch token: HTTP %d: %s", resp.status, redact.excerpt(resp.body))
  end
  local t, perr = parse_token(resp.body, resp.headers["content-type"])
  if not t then
    return nil, perr
  end
  local ttype = t.token_type
  if type(ttype) ~= "string" or ttype == "" or ttype:lower() == "bearer" then
    ttype = "Bearer"
  end
  local tok = { access_token = t.access_token, type = ttype }
  local expires_in = tonumber(t.expires_in)
  if expires_in and expires_in > 0 then
    tok.expiry = scheduler.now() + expires_in
  end
  return tok
end

--- The current token (fetched when missing or about to expire); from a task.
---@return table|nil token { access_token, type, expiry }, string|nil err
function Source:token()
  local t = self.tok
  if t and (not t.expiry or scheduler.now() < t.expiry - M.EXPIRY_DELTA) then
    return t
  end
  if self.waiters then -- a fetch is under way: wait for it
    local gen = self.gen
    self.waiters[#self.waiters + 1] = scheduler.current()
    repeat
      scheduler.suspend()
    until self.gen ~= gen
    if self.last_err then
      return nil, self.last_err
    end
    return self.tok
  end
  self.waiters = {}
  local ok, tok, err = pcall(self.fetch, self)
  if not ok then
    tok, err = nil, tok == scheduler.CANCELLED and "oauth2: token fetch cancelled" or tostring(tok)
  end
  local waiters = self.waiters
  self.waiters = nil
  self.gen = self.gen + 1
  self.last_err = err
  if tok then
    self.tok = tok
  end
  for _, w in ipairs(waiters) do
    scheduler.wake(w)
  end
  if not ok and err == "oauth2: token fetch cancelled" then
    error(scheduler.CANCELLED, 0)
  end
  return tok, err
end

--- Forgets the cached token (the next request fetches a new one).
function Source:invalidate()
  self.tok = nil
end

return M
