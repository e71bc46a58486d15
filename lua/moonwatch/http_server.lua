--- moonwatch.http_server: a small router on top of moonwatch.httpd.
-- Every route handler runs in its own scheduler task, so it may sleep or wait
-- on other tasks; it returns `status, body, headers` (a table body is sent as
-- JSON) and the answer goes out when the task ends. An error in a handler
-- answers 500 and is logged; a handler that never returns gets 503 after
-- the server's answer timeout.
--
--   local http_server = require("moonwatch.http_server")
--   local srv = assert(http_server.listen("127.0.0.1:12345"))
--   srv:route("GET", "/-/ready", function() return 200, "Ready.\n" end)
--   srv:route("GET", "^/api/v0/component/([^/]+)$", function(req, id)
--     return http_server.json(200, { id = id })
--   end)
--   srv:route("*", "/static/*", function(req, rest) ... end)
local httpd = require("moonwatch.httpd")
local scheduler = require("moonwatch.scheduler")
local log = require("moonwatch.log")
local errors = require("moonwatch.errors")
local cjson = require("cjson")

local M = {}

local JSON_TYPE = "application/json"

-- Debian's lua-cjson 2.1.0 encodes every empty table as {}; a table marked with
-- M.array is encoded as a JSON array even when empty.
local ARRAY_MT = {}
local EMPTY_ARRAY = "\1moonwatch-empty-array\1"

--- Marks t as a JSON array (so an empty one encodes as []); returns t.
function M.array(t)
  return setmetatable(t or {}, ARRAY_MT)
end

local function mark_empty(v)
  if type(v) ~= "table" then
    return v
  end
  if next(v) == nil and getmetatable(v) == ARRAY_MT then
    return EMPTY_ARRAY
  end
  local out = {}
  for k, x in pairs(v) do
    out[k] = mark_empty(x)
  end
  return out
end

--- Encodes a value as JSON ("/" is not escaped; M.array tables stay arrays when empty).
---@param value any
---@return string
function M.encode_json(value)
  local s = cjson.encode(mark_empty(value)):gsub("\\/", "/")
  return (s:gsub('"\\u0001moonwatch%-empty%-array\\u0001"', "[]"))
end

--- Decodes the JSON body of a request.
---@param req table the request
---@return any|nil value, string|nil err
function M.decode_json(req)
  local ok, value = pcall(cjson.decode, req.body)
  if not ok then
    return nil, "invalid JSON body: " .. tostring(value)
  end
  return value
end

--- A JSON answer, to return from a handler: `return http_server.json(200, t)`.
---@param status integer
---@param value any
---@param headers table|nil extra headers
---@return integer status, string body, table headers
function M.json(status, value, headers)
  local h = { ["Content-Type"] = JSON_TYPE }
  for k, v in pairs(headers or {}) do
    h[k] = v
  end
  return status, M.encode_json(value), h
end

local Server = {}
Server.__index = Server

local function has_content_type(headers)
  for k in pairs(headers) do
    if k:lower() == "content-type" then
      return true
    end
  end
  return false
end

-- Sends a handler's results; a table body becomes JSON.
local function send(self, req, status, body, headers)
  if type(status) ~= "number" then
    error("handler returned no status (got " .. type(status) .. ")", 0)
  end
  headers = headers or {}
  if type(body) == "table" then
    body = M.encode_json(body)
    if not has_content_type(headers) then
      headers["Content-Type"] = JSON_TYPE
    end
  elseif body ~= nil then
    body = tostring(body)
  end
  local ok, err = req:respond(status, body, headers)
  if not ok then
    self.log:warn("http answer not sent", { method = req.method, path = req.path, err = err })
  end
end

-- Finds the route for req: route, captures; or nil, status, allowed methods.
local function match(self, req)
  local allowed, path_matched = {}, false
  for _, r in ipairs(self.routes) do
    local caps
    if r.kind == "pattern" then
      caps = { req.path:match(r.pattern) }
      caps = caps[1] ~= nil and caps or nil
    elseif r.kind == "prefix" then
      caps = req.path:sub(1, #r.pattern) == r.pattern and { req.path:sub(#r.pattern + 1) } or nil
    else
      caps = req.path == r.pattern and {} or nil
    end
    if caps then
      path_matched = true
      if r.method == "*" or r.method == req.method or (req.method == "HEAD" and r.method == "GET") then
        return r, caps
      end
      allowed[#allowed + 1] = r.method
    end
  end
  return nil, path_matched and 405 or 404, allowed
end

-- The httpd handler: guard, route, then run the route's function in a task.
local function dispatch(self, req)
  if self.guard_fn then
    local status, body, headers = self.guard_fn(req)
    if status then
      return status, body, headers
    end
  end
  local route, caps, allowed = match(self, req)
  if not route then
    if caps == 405 then
      return 405, "method not allowed\n", { Allow = table.concat(allowed, ", ") }
    end
    return 404, "404 page not found\n"
  end
  local task = scheduler.spawn(function(...)
    send(self, req, route.fn(req, ...))
  end, {
    name = "http " .. req.method .. " " .. req.path,
    component_id = self.component_id,
    on_exit = function(task, ok, err)
      self.tasks[task] = nil
      if not ok then -- the scheduler has logged the traceback
        self.log:warn("http request failed", {
          method = req.method, path = req.path, status = 500, err = errors.describe(err, "http " .. req.path),
        })
        req:respond(500, "internal server error\n")
      end
    end,
  }, unpack(caps))
  if not task.done then
    self.tasks[task] = true
  end
  -- nothing returned: the answer was given, or will be, through req:respond
end

-- Host guard ---------------------------------------------------------------

--- Splits a Host header or an authority ("name", "name:80", "[::1]:80") into the host
--- (lowercased, without brackets or a trailing dot) and the port (nil when absent).
---@param s string
---@return string|nil host, string|nil port
function M.split_host(s)
  s = s:lower()
  local host, port
  if s:sub(1, 1) == "[" then
    host, port = s:match("^%[([%x:%.]+)%]:?(%d*)$")
  else
    host, port = s:match("^([^:]*):?(%d*)$")
  end
  if not host or host == "" then
    return nil
  end
  return (host:gsub("%.$", "")), port ~= "" and port or nil
end

local function is_ipv4(h)
  local a, b, c, d = h:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  return a ~= nil and tonumber(a) < 256 and tonumber(b) < 256 and tonumber(c) < 256 and tonumber(d) < 256
end

--- Whether h (as M.split_host returns it) is an IPv4 or IPv6 literal.
function M.is_ip(h)
  return is_ipv4(h) or (h:find(":", 1, true) ~= nil and h:match("^[%x:%.]+$") ~= nil)
end

local function is_loopback(h)
  return h == "localhost" or h == "::1" or h == "0:0:0:0:0:0:0:1" or (is_ipv4(h) and h:sub(1, 4) == "127.")
end

local WILDCARD = { [""] = true, ["0.0.0.0"] = true, ["::"] = true }

local SAFE_METHODS = { GET = true, HEAD = true, OPTIONS = true }

--- A guard (for Server:guard) against DNS rebinding and cross-site requests, as
--- browsers can be made to send them. A request is refused with 403 when
--- - its Host names none of: localhost or a loopback address; the listen address's host;
---   the bound address; the entries of opts.allowed (host names or addresses, a port is
---   ignored; "*" allows any); and, when listening on every address (0.0.0.0, [::] or
---   ":port"), any IP address and the machine's host name (opts.hostname);
--- - its method changes state (not GET, HEAD or OPTIONS) and it carries an Origin
---   header whose host and port are not the Host's (a cross-origin form or fetch).
--- A request without Host (HTTP/1.0) passes the first rule. opts.on_refuse(reason),
--- if given, is called with "host" or "origin" for each refusal.
---@param opts table { listen_addr = string, bound_addr = string, allowed = string[],
---   hostname = string|nil, on_refuse = function|nil }
---@return function guard
function M.host_guard(opts)
  local names, any = {}, false
  local listen_host = M.split_host(opts.listen_addr or "") or ""
  if opts.listen_addr and opts.listen_addr:sub(1, 1) == ":" then
    listen_host = ""
  end
  local wildcard = WILDCARD[listen_host] or false
  names[listen_host] = true
  local bound = opts.bound_addr and M.split_host(opts.bound_addr)
  if bound then
    names[bound] = true
  end
  if wildcard and opts.hostname then
    names[opts.hostname:lower()] = true
  end
  for _, a in ipairs(opts.allowed or {}) do
    if a == "*" then
      any = true
    else
      local h = M.split_host(a)
      if h then
        names[h] = true
      end
    end
  end
  names[""] = nil
  local function refuse(reason, msg)
    if opts.on_refuse then
      opts.on_refuse(reason)
    end
    return 403, msg
  end
  return function(req)
    local host_header = req.headers.host
    local host, port
    if host_header then
      host, port = M.split_host(host_header)
      if not any and not (host and (names[host] or is_loopback(host) or (wildcard and M.is_ip(host)))) then
        return refuse("host", string.format("host %q is not allowed; to serve it, start moonwatch with "
          .. "--server.http.allowed-hosts=%s\n", host_header, host or host_header))
      end
    end
    local origin = req.headers.origin
    if origin and not SAFE_METHODS[req.method] then
      local scheme, authority = origin:lower():match("^(%a[%w+.-]*)://([^/]+)$")
      local ohost, oport
      if authority then
        ohost, oport = M.split_host(authority)
      end
      local default = scheme == "https" and "443" or "80"
      if not ohost or not host or ohost ~= host or (oport or default) ~= (port or default) then
        return refuse("origin", string.format("cross-origin request from %q refused\n", origin))
      end
    end
  end
end

--- Starts a server on addr ("127.0.0.1:12345", "[::1]:0", ":8080").
---@param addr string
---@param opts table|nil { component_id = string (for logs), max_body = bytes (1 MiB),
---   answer_timeout = seconds (60), idle_timeout = seconds (60), head_timeout = seconds a
---   client has to send a request head (10), max_connections = open connections at most
---   (4096, kept below the open-files limit), max_per_ip = per client address (0: no limit) }
---@return table|nil server, string|nil err
function M.listen(addr, opts)
  opts = opts or {}
  local self = setmetatable({
    routes = {},
    tasks = {},
    component_id = opts.component_id,
    log = log.new({ component_id = opts.component_id }),
  }, Server)
  local srv, err = httpd.listen(addr, function(req)
    return dispatch(self, req)
  end, {
    max_body = opts.max_body, answer_timeout = opts.answer_timeout, idle_timeout = opts.idle_timeout,
    head_timeout = opts.head_timeout, max_connections = opts.max_connections, max_per_ip = opts.max_per_ip,
  })
  if not srv then
    return nil, err
  end
  self.srv = srv
  return self
end

--- Adds a route; the first matching route wins. A pattern starting with "^" is a
--- Lua pattern whose captures are passed to fn after req; one ending with "*" is
--- a prefix and the rest of the path is passed; anything else matches exactly.
--- HEAD requests match GET routes. fn(req, ...) returns status, body, headers.
---@param method string "GET", "POST", ... or "*" for any
---@param pattern string
---@param fn function
---@return table self
function Server:route(method, pattern, fn)
  if type(method) ~= "string" or type(pattern) ~= "string" or type(fn) ~= "function" then
    error("route(method, pattern, fn): bad arguments", 2)
  end
  local r = { method = method:upper(), fn = fn }
  if pattern:sub(1, 1) == "^" then
    r.kind, r.pattern = "pattern", pattern
  elseif pattern:sub(-1) == "*" then
    r.kind, r.pattern = "prefix", pattern:sub(1, -2)
  else
    r.kind, r.pattern = "exact", pattern
  end
  table.insert(self.routes, r)
  return self
end

--- Sets a guard run before routing: guard(req) returns nothing to let the request
--- through, or status, body, headers to answer it at once (e.g. 403).
---@param fn function|nil
---@return table self
function Server:guard(fn)
  self.guard_fn = fn
  return self
end

--- The bound address, e.g. "127.0.0.1:43123" (nil once closed).
---@return string|nil
function Server:addr()
  return self.srv:addr()
end

--- The bound port (nil once closed).
---@return integer|nil
function Server:port()
  return self.srv:port()
end

--- Counters of the server: { head_timeouts = connections closed because their request head
--- did not arrive in time, max_connections = the connection cap in force } (nil once closed).
---@return table|nil
function Server:stats()
  return self.srv:stats()
end

--- Stops the server: cancels running handlers; unanswered requests get 503.
function Server:close()
  for task in pairs(self.tasks) do
    scheduler.cancel(task)
  end
  self.tasks = {}
  self.srv:close()
end

return M
