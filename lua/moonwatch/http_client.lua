--- moonwatch.http_client: HTTP requests from scheduler tasks, configured like
-- Alloy's/Prometheus's HTTP client (basic_auth, authorization, bearer_token,
-- bearer_token_file, oauth2, tls_config, proxy_url, no_proxy,
-- proxy_from_environment, proxy_connect_header, follow_redirects,
-- enable_http2, http_headers).
--
-- A request suspends the calling task (scheduler.suspend) while libcurl works
-- on the loop (moonwatch.httpc); cancelling the task cancels the request.
-- Secrets may be strings or objects with :reveal() (moonwatch.schema
-- secrets); they are revealed only into the options handed to C, never kept
-- in a client or logged.
--
--   local http_client = require("moonwatch.http_client")
--   local client = assert(http_client.new({
--     bearer_token = schema.secret("t0k"),
--     tls_config = { ca_file = "/etc/ca.pem" },
--   }))
--   scheduler.spawn(function()
--     local resp, err = client:request({ url = "https://host:9100/metrics", timeout = "10s",
--       max_body = 10e6, accept_gzip = true, headers = { Accept = "text/plain" } })
--     if not resp then return log:warn("scrape failed", { err = err }) end
--     print(resp.status, resp.headers["content-type"], #resp.body)
--   end)
--
-- With keep_body = true, resp.body is a C-owned body userdata (see
-- moonwatch.httpc): `body:ptr()` gives a pointer for FFI parsers
-- (ffi.cast("const char *", body:ptr()), body:len()) and `body:gunzip(max)`
-- inflates in C, so a scrape never makes a Lua string of the payload.
local httpc = require("moonwatch.httpc")
local scheduler = require("moonwatch.scheduler")
local duration = require("moonwatch.duration")
local redact = require("moonwatch.redact")

local type, pairs, ipairs, pcall, error, setmetatable = type, pairs, ipairs, pcall, error, setmetatable

local M = {}

M.DEFAULT_TIMEOUT = 30

local TLS_VERSIONS = { TLS10 = true, TLS11 = true, TLS12 = true, TLS13 = true }

-- Headers the client sets itself (Prometheus's reserved http_headers).
local RESERVED_HEADERS = {}
for _, h in ipairs({ "Authorization", "Host", "Content-Encoding", "Content-Length", "Content-Type",
  "User-Agent", "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
  "Www-Authenticate", "Accept-Encoding", "X-Prometheus-Remote-Write-Version",
  "X-Prometheus-Remote-Read-Version", "X-Prometheus-Scrape-Timeout-Seconds" }) do
  RESERVED_HEADERS[h:lower()] = true
end

--- Percent-encodes s for a URL query or form (RFC 3986 unreserved characters kept).
---@param s string
---@return string
function M.urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

--- The plain value of a secret (an object with :reveal()) or string.
---@param v any
---@return any
function M.reveal(v)
  if type(v) == "table" and type(v.reveal) == "function" then
    return v:reveal()
  end
  return v
end
local reveal = M.reveal

local function set(v)
  return v ~= nil and v ~= ""
end

local function exclusive(t, a, b, where)
  if t and set(t[a]) and set(t[b]) then
    return string.format("%s%s and %s are mutually exclusive", where, a, b)
  end
end

-- Returns an error message for a bad tls_config, or nil.
local function check_tls(tls, where)
  if tls == nil then
    return nil
  end
  if type(tls) ~= "table" then
    return where .. "tls_config must be a table"
  end
  local err = exclusive(tls, "ca_pem", "ca_file", where .. "tls_config: ")
    or exclusive(tls, "cert_pem", "cert_file", where .. "tls_config: ")
    or exclusive(tls, "key_pem", "key_file", where .. "tls_config: ")
  if err then
    return err
  end
  local has_cert, has_key = set(tls.cert_pem) or set(tls.cert_file), set(tls.key_pem) or set(tls.key_file)
  if has_cert ~= has_key then
    return where .. "tls_config: client certificate and key must be given together"
  end
  if set(tls.min_version) and not TLS_VERSIONS[tls.min_version] then
    return string.format("%stls_config: unknown min_version %q (use TLS10, TLS11, TLS12 or TLS13)", where,
      tostring(tls.min_version))
  end
end

-- Returns an error message for bad proxy settings in t, or nil.
local function check_proxy(t, where)
  if set(t.no_proxy) and not set(t.proxy_url) then
    return where .. "if no_proxy is configured, proxy_url must also be configured"
  end
  if t.proxy_from_environment and (set(t.proxy_url) or set(t.no_proxy)) then
    return where .. "if proxy_from_environment is configured, proxy_url and no_proxy must not be configured"
  end
  if t.proxy_connect_header and next(t.proxy_connect_header) and not (set(t.proxy_url) or t.proxy_from_environment) then
    return where .. "if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured"
  end
end

--- Validates an Alloy-style HTTP client config; returns an error message or nil.
---@param cfg table
---@return string|nil err
function M.validate(cfg)
  local err = exclusive(cfg, "bearer_token", "bearer_token_file", "")
    or exclusive(cfg.basic_auth, "password", "password_file", "basic_auth: ")
    or exclusive(cfg.authorization, "credentials", "credentials_file", "authorization: ")
    or check_tls(cfg.tls_config, "")
    or check_proxy(cfg, "")
  if err then
    return err
  end
  local auths = 0
  for _, set_ in ipairs({ cfg.basic_auth ~= nil, cfg.authorization ~= nil, cfg.oauth2 ~= nil,
    set(cfg.bearer_token) or set(cfg.bearer_token_file) }) do
    auths = auths + (set_ and 1 or 0)
  end
  if auths > 1 then
    return "at most one of basic_auth, authorization, oauth2, bearer_token & bearer_token_file must be configured"
  end
  if cfg.authorization and type(cfg.authorization.type) == "string" and cfg.authorization.type:lower() == "basic" then
    return "authorization type cannot be set to \"basic\", use \"basic_auth\" instead"
  end
  for name in pairs(cfg.http_headers or {}) do
    if RESERVED_HEADERS[tostring(name):lower()] then
      return string.format("http_headers: setting header %q is not allowed", name)
    end
  end
  local o = cfg.oauth2
  if o then
    err = exclusive(o, "client_secret", "client_secret_file", "oauth2: ") or check_tls(o.tls_config, "oauth2: ")
      or check_proxy(o, "oauth2: ")
    if err then
      return err
    end
    if not set(o.token_url) then
      return "oauth2: token_url is required"
    end
  end
end

local Client = {}
Client.__index = Client
Client.__tostring = function()
  return "http client"
end

--- A client for an Alloy-style config (validated; see M.validate).
---@param cfg table|nil
---@return table|nil client, string|nil err
function M.new(cfg)
  cfg = cfg or {}
  local err = M.validate(cfg)
  if err then
    return nil, err
  end
  local self = setmetatable({ cfg = cfg }, Client)
  -- the secrets made of the config, masked wherever they could show while the client lives:
  -- a proxy's password, and the basic credentials a server or proxy may echo back
  redact.register_url(self, reveal(cfg.proxy_url))
  if cfg.basic_auth then
    redact.register_basic(self, reveal(cfg.basic_auth.username), reveal(cfg.basic_auth.password))
  end
  if cfg.oauth2 then
    redact.register_url(self, reveal(cfg.oauth2.proxy_url))
    redact.register_url(self, cfg.oauth2.token_url)
    redact.register_basic(self, M.urlencode(cfg.oauth2.client_id or ""),
      M.urlencode(reveal(cfg.oauth2.client_secret) or ""))
  end
  if cfg.oauth2 then
    self.oauth2 = require("moonwatch.oauth2").new(cfg.oauth2)
  end
  return self
end

local function seconds(v, what)
  if v == nil or type(v) == "number" then
    return v
  end
  local s, err = duration.parse(v)
  if not s then
    error(what .. ": " .. err, 3)
  end
  return s
end

-- name -> value | { values } (values may be secrets), revealed into a new table.
local function reveal_headers(dst, src)
  for name, v in pairs(src or {}) do
    if type(v) == "table" and getmetatable(v) == nil then
      local list = {}
      for i, x in ipairs(v) do
        list[i] = reveal(x)
      end
      dst[name] = list
    else
      dst[name] = reveal(v)
    end
  end
  return dst
end

--- Whether headers (name -> value) has a header of this name, whatever its case.
---@param headers table|nil
---@param name string
---@return boolean
function M.has_header(headers, name)
  name = name:lower()
  for k in pairs(headers or {}) do
    if type(k) == "string" and k:lower() == name then
      return true
    end
  end
  return false
end

--- The flat moonwatch.httpc options for a request under an Alloy-style config
--- (secrets revealed). For tools and tests; Client:request uses it.
---@param cfg table the config (validated)
---@param req table { url, method, headers, body, timeout, connect_timeout, max_body, accept_gzip, keep_body }
---@return table opts
function M.options(cfg, req)
  local tls = cfg.tls_config or {}
  local headers = reveal_headers({}, cfg.http_headers)
  reveal_headers(headers, req.headers)
  local o = {
    url = req.url,
    method = req.method,
    headers = headers,
    body = req.body,
    timeout = seconds(req.timeout, "timeout") or M.DEFAULT_TIMEOUT,
    connect_timeout = seconds(req.connect_timeout, "connect_timeout"),
    max_body = req.max_body,
    truncate_body = req.truncate_body,
    accept_gzip = req.accept_gzip,
    keep_body = req.keep_body,
    on_line = req.on_line,
    max_line = req.max_line,
    user_agent = req.user_agent,
    follow_redirects = cfg.follow_redirects ~= false,
    enable_http2 = cfg.enable_http2 ~= false,
    http2_prior_knowledge = req.http2_prior_knowledge,
    proxy_url = reveal(cfg.proxy_url),
    no_proxy = cfg.no_proxy,
    proxy_from_environment = cfg.proxy_from_environment,
    proxy_connect_headers = cfg.proxy_connect_header and reveal_headers({}, cfg.proxy_connect_header),
    ca_file = tls.ca_file,
    ca_pem = tls.ca_pem,
    cert_file = tls.cert_file,
    cert_pem = tls.cert_pem,
    key_file = tls.key_file,
    key_pem = reveal(tls.key_pem),
    server_name = tls.server_name,
    insecure_skip_verify = tls.insecure_skip_verify,
    min_version = tls.min_version,
  }
  -- a request's own Authorization header is sent instead of the configured credentials, never
  -- beside them (two Authorization headers): Prometheus's basic_auth, authorization and
  -- bearer_token round trippers leave a request that has one as it is
  local ba = cfg.basic_auth
  if M.has_header(headers, "Authorization") then
    return o
  elseif ba then
    o.username, o.password, o.password_file = reveal(ba.username), reveal(ba.password), ba.password_file
  elseif cfg.authorization then
    local a = cfg.authorization
    o.auth_type, o.auth_credentials, o.auth_credentials_file = a.type, reveal(a.credentials), a.credentials_file
  elseif set(cfg.bearer_token) then
    o.auth_type, o.auth_credentials = "Bearer", reveal(cfg.bearer_token)
  elseif set(cfg.bearer_token_file) then
    -- bearer_token_fallback: no argument of Alloy's; a kubeconfig user's token beside its
    -- tokenFile, sent when the file cannot be read (client-go's precedence)
    o.auth_type, o.auth_credentials_file = "Bearer", cfg.bearer_token_file
    o.auth_credentials = set(cfg.bearer_token_fallback) and reveal(cfg.bearer_token_fallback) or nil
  end
  return o
end

--- Starts a request with flat moonwatch.httpc options and waits for it in the
--- running task. Returns resp, or nil, err for transport errors (any HTTP
--- status is a response). Cancelling the task cancels the request.
---@param opts table moonwatch.httpc options
---@return table|nil resp, string|nil err
function M.perform(opts)
  local task = scheduler.current()
  if not task then
    error("http_client: request called outside a task (use scheduler.spawn)", 2)
  end
  local result
  local handle, err = httpc.request(opts, function(resp)
    result = resp
    scheduler.wake(task)
  end)
  if not handle then
    return nil, err
  end
  while not result do
    local ok, e = pcall(scheduler.suspend)
    if not ok then
      handle:cancel()
      error(e, 0)
    end
  end
  if result.err then
    return nil, result.err
  end
  return result
end

--- Sends req with this client's config from the running task.
--- resp = { status, headers (lowercased), body (string, or a C body with
--- keep_body), gzip, duration, url }.
---@param req table { url, method ("GET"), headers = { name = value | {values} }, body,
---   timeout (seconds or "10s"; default 30 s), connect_timeout, max_body (bytes),
---   truncate_body (past max_body: keep its first max_body bytes, drop the rest and succeed,
---   rather than fail), accept_gzip, keep_body, user_agent, on_line, max_line }
--- With on_line = function(line), a 2xx body is streamed: each line goes to on_line as it
--- arrives (from the loop, while this task waits; see moonwatch.httpc), resp.body is "".
---@return table|nil resp, string|nil err
function Client:request(req)
  if type(req) ~= "table" or type(req.url) ~= "string" then
    error("request: req.url is required", 2)
  end
  local opts = M.options(self.cfg, req)
  if self.oauth2 then
    local token, err = self.oauth2:token()
    if not token then
      return nil, err
    end
    opts.auth_type, opts.auth_credentials = token.type, token.access_token
    -- the token replaces a request's own Authorization header (Go's oauth2.Transport sets it)
    for k in pairs(opts.headers) do
      if k:lower() == "authorization" then
        opts.headers[k] = nil
      end
    end
  end
  return M.perform(opts)
end

--- A one-off request: req's own fields plus Alloy-style config fields in one table.
---@param req table see Client:request and M.validate
---@return table|nil resp, string|nil err
function M.request(req)
  local client, err = M.new(req)
  if not client then
    return nil, err
  end
  return client:request(req)
end

return M
