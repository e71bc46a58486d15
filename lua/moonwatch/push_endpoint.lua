--- moonwatch.push_endpoint: what the endpoints of the pushing components (prometheus.remote_write,
--- loki.write, pyroscope.write) share: endpoint names and argument checks, the HTTP client, a POST
--- classified as sent / retry / rejected (with Retry-After), the reconciling of endpoints on an
--- update, and the health report.
-- Each component keeps its own queue, metrics (names and labels) and retry loop; this module
-- holds only what is the same logic in both.
local ffi_rt = require("moonwatch.ffi")
local fs = require("moonwatch.fs")
local core = require("moonwatch.native.core")
local httpconfig = require("moonwatch.httpconfig")
local http_client = require("moonwatch.http_client")
local redact = require("moonwatch.redact")
local scheduler = require("moonwatch.scheduler")

local M = {}

--- The most of a response body a push reads (the rest is dropped): only a short excerpt of it is
--- ever shown; an answer to a push is a few bytes (the Collector's otlphttp exporter reads 64 KiB,
--- maxHTTPResponseReadBytes). Used by every pushing component (the OTLP exporters too).
M.MAX_RESPONSE = 64 * 1024

--- The endpoint's name: its name argument, else a hash of its URL without its password (names
--- metrics, logs, cursors): a hash of the password would let whoever sees the name (the debug
--- API, the logs) test guesses of it offline.
---@param e table the endpoint block
---@return string
function M.name(e)
  return e.name or core.sha256_hex(redact.url(e.url), 12)
end

-- The name of an endpoint without a name argument whose URL has a password, as older versions
-- made it (a hash of the URL with its password); nil when it is the same as M.name.
local function legacy_name(e)
  if e.name or redact.url(e.url) == e.url then
    return nil
  end
  return core.sha256_hex(e.url, 12)
end

-- Renames the cursor files of an endpoint named as older versions named it (legacy_name) in
-- dir, unless it has cursor files under its name already: it goes on from its cursor instead
-- of sending the whole queue (WAL) again.
local function exists(path)
  local f = io.open(path)
  if f then
    f:close()
  end
  return f ~= nil
end

local function migrate_cursor(dir, e)
  local old = legacy_name(e)
  if not old or not dir then
    return
  end
  local new = M.name(e)
  local cur = dir .. "/cursor." .. new
  if exists(cur) or not exists(dir .. "/cursor." .. old) then
    return
  end
  os.rename(dir .. "/.cursor." .. old .. ".prev", dir .. "/.cursor." .. new .. ".prev")
  os.rename(dir .. "/cursor." .. old, cur)
end

--- Checks the endpoint names of args.endpoint: allowed characters, no two alike.
---@return string|nil err
function M.validate_names(endpoints)
  local names = {}
  for i, e in ipairs(endpoints) do
    local n = M.name(e)
    if not n:match("^[%w_%-%.]+$") then
      return string.format("endpoint[%d]: name: only letters, digits, '_', '-' and '.'", i)
    end
    if names[n] then
      return string.format("endpoint[%d]: two endpoints named %q", i, n)
    end
    names[n] = true
  end
end

--- The checks of an endpoint block with url, min_backoff_period, max_backoff_period and the
--- HTTP client arguments (loki.write, pyroscope.write): a schema validate function.
---@return string|nil err
function M.validate_endpoint(e)
  if not e.url:match("^https?://[^/]") then
    return "url: must start with http:// or https:// and name a host"
  end
  if e.min_backoff_period > e.max_backoff_period then
    return "min_backoff_period must not be greater than max_backoff_period"
  end
  -- what no HTTP request can carry would fail every request (retried, then dropped)
  if type(e.tenant_id) == "string" and e.tenant_id:find("%c") then
    return "tenant_id: a control character cannot be sent in X-Scope-OrgID"
  end
  for name, v in pairs(type(e.headers) == "table" and e.headers or {}) do
    if type(v) == "table" and v.reveal then
      v = v:reveal()
    end
    if not tostring(name):match("^[!#$%%&'*+%-.^_`|~%w]+$") then
      return string.format("headers: invalid header name %q", tostring(name))
    elseif type(v) == "string" and v:find("[%z\r\n]") then
      return string.format("headers: the value of %q: a control character (CR, LF or NUL) cannot be sent", name)
    end
  end
  return http_client.validate(httpconfig.client_config(e))
end

--- The checks of a component with endpoint blocks and external_labels (loki.write,
--- pyroscope.write): endpoint names, then label names.
---@return string|nil err
function M.validate_args(args)
  local err = M.validate_names(args.endpoint)
  if err then
    return err
  end
  for k in pairs(args.external_labels) do
    if not k:match("^[%a_][%w_]*$") then
      return string.format("external_labels: invalid label name %q", k)
    end
  end
end

--- The endpoint's HTTP client; while it lives, the password of the endpoint's URL (and the
--- basic credentials made of it) are masked wherever they could show.
function M.new_client(e)
  local client = assert(http_client.new(httpconfig.client_config(e)))
  redact.register_url(client, e.url)
  return client
end

--- Seconds a Retry-After header asks for (delta-seconds above 0), else default: 0, an HTTP-date
--- or anything but digits ("inf", "1e9", "0x10") leaves the backoff as it is (Prometheus and
--- the Collector parse it with strconv.Atoi and retry with their backoff on 0).
function M.retry_after(headers, default)
  local v = headers and headers["retry-after"]
  local digits = type(v) == "string" and v:match("^%s*(%d+)%s*$")
  local n = digits and tonumber(digits)
  if n and n > 0 then
    return n
  end
  return default
end

local Backoff = {}
Backoff.__index = Backoff

--- An exponential backoff with jitter, as Alloy's loki.write retries (dskit's backoff): each
--- delay is drawn in [lo, hi), lo starting at min and hi at min(2 min, max), both doubled (each
--- capped at max) after a draw while hi is below max, then left as they are: the delays stay
--- below max (min when min >= max). max_retries: the attempts a request gets in all (not the
--- retries after the first: Alloy's client stops once it has counted max_retries failures); 0:
--- no limit.
---@param min number seconds
---@param max number seconds
---@param max_retries integer
function M.new_backoff(min, max, max_retries)
  return setmetatable({ lo = min, hi = math.min(2 * min, max), max = max, max_retries = max_retries, failures = 0 },
    Backoff)
end

--- Counts a failed attempt and returns the delay before the next one, or nil when the request
--- has had all its attempts.
---@return number|nil seconds
function Backoff:next()
  self.failures = self.failures + 1
  local delay = self.lo
  if self.lo < self.hi then
    delay = self.lo + math.random() * (self.hi - self.lo)
    if self.hi < self.max then
      self.lo, self.hi = math.min(2 * self.lo, self.max), math.min(2 * self.hi, self.max)
    end
  end
  if self.max_retries > 0 and self.failures >= self.max_retries then
    return nil
  end
  return delay
end

--- POSTs body to the endpoint (ep.cfg.url, ep.client) with headers plus the endpoint's own
--- (ep.cfg.headers). Returns outcome, err, wait, status, seconds: outcome "sent" for a 2xx;
--- "retry" for network errors (wait: backoff), 5xx and, with retry_429, 429 (wait: Retry-After,
--- else backoff); "rejected" for any other status (4xx, a 3xx not followed), which will never
--- succeed. status is -1 without a response; seconds is how long the request took.
--- span (optional, moonwatch.tracing): the request's span, given its endpoint, HTTP status and
--- outcome here, and finished (status Error unless sent).
---@return string outcome, string|nil err, number|nil wait, integer status, number seconds
function M.post(ep, body, headers, backoff, retry_429, span)
  local outcome, why, wait, status, seconds = M.post_untraced(ep, body, headers, backoff, retry_429)
  if span and span.sampled then
    span:set("endpoint", ep.name)
    span:set("http.response.status_code", status)
    span:set("outcome", outcome)
    span:set("request_bytes", #body)
    span:finish(outcome ~= "sent" and why or nil)
  end
  return outcome, why, wait, status, seconds
end

--- Adds the custom headers of an endpoint (name -> value or secret) to headers, the request's
--- own (the protocol's, the tenant's): a custom header never replaces one headers has, whatever
--- its case (Alloy's loki.write skips them, Prometheus refuses them, connect-go and grpc-go set
--- theirs over them), nor one named in reserved (lowercased names -> true: what the protocol
--- keeps to itself even when it does not send it, e.g. Content-Encoding of a body sent as it is).
--- A custom Authorization does replace the one of basic_auth, authorization and bearer_token
--- (moonwatch.http_client, as Prometheus's round trippers). Used by every pushing component
--- (loki.write, remote_write, pyroscope.write, the OTLP exporters).
---@param headers table the request's headers (changed and returned)
---@param custom table|nil the endpoint's headers argument
---@param reserved table|nil
---@return table headers
function M.merge_headers(headers, custom, reserved)
  local set = {}
  for k in pairs(headers) do
    set[k:lower()] = true
  end
  for k, v in pairs(custom or {}) do
    local lk = k:lower()
    if not set[lk] and not (reserved and reserved[lk]) then
      headers[k] = v
    end
  end
  return headers
end

--- POSTs body to url with the endpoint's client (ep.client) and timeout (ep.cfg.remote_timeout),
--- headers plus the endpoint's own (merge_headers with reserved), reading at most MAX_RESPONSE
--- bytes of the answer. Returns resp, err (moonwatch.http_client's) and the seconds it took.
---@return table|nil resp, string|nil err, number seconds
function M.request(ep, url, body, headers, reserved)
  local cfg = ep.cfg
  M.merge_headers(headers, cfg.headers, reserved)
  local t0 = ffi_rt.monotonic()
  local resp, rerr = ep.client:request({
    method = "POST", url = url, body = body, headers = headers,
    user_agent = "moonwatch/" .. ffi_rt.version(), timeout = cfg.remote_timeout,
    max_body = M.MAX_RESPONSE, truncate_body = true,
  })
  return resp, rerr, ffi_rt.monotonic() - t0
end

function M.post_untraced(ep, body, headers, backoff, retry_429)
  local resp, rerr, seconds = M.request(ep, ep.cfg.url, body, headers)
  if not resp then
    return "retry", rerr, backoff, -1, seconds
  end
  local status = resp.status
  if status >= 200 and status < 300 then
    return "sent", nil, nil, status, seconds
  end
  -- an error page may echo the request (its credentials): only a short, clean excerpt of it
  local why = string.format("server returned HTTP status %d: %s", status, redact.excerpt(resp.body))
  if (status >= 500 and status < 600) or (status == 429 and retry_429) then
    return "retry", why, M.retry_after(resp.headers, backoff), status, seconds
  end
  return "rejected", why, nil, status, seconds
end

--- Brings self.endpoints (name -> ep) to the endpoint blocks of args: stops the endpoints no
--- longer wanted (self:stop_endpoint(ep)), restarts those for which restart(ep, e) is true, updates
--- the others in place (update(ep, e), after a new client) and starts new ones
--- (self:start_endpoint(name, e, ext)).
function M.reconcile(self, endpoints, ext, restart, update)
  local wanted = {}
  for _, e in ipairs(endpoints) do
    wanted[M.name(e)] = e
  end
  for name, ep in pairs(self.endpoints) do
    if not wanted[name] then
      self:stop_endpoint(ep)
      self.endpoints[name] = nil
    end
  end
  for name, e in pairs(wanted) do
    local ep = self.endpoints[name]
    if ep and restart(ep, e) then
      self:stop_endpoint(ep)
      ep = nil
    end
    if ep then
      ep.cfg, ep.client = e, M.new_client(e)
      update(ep, e)
    else
      migrate_cursor(self.ctx and self.ctx.storage_path, e)
      self.endpoints[name] = self:start_endpoint(name, e, ext)
    end
  end
end

--- Stops an endpoint's sender task and closes its reader now (saving its cursor), not at garbage
--- collection: a reader of the same name may be opened right away.
function M.stop(ep)
  ep.stopped = true
  if ep.task then
    scheduler.cancel(ep.task)
  end
  if ep.reader then
    ep.reader:close()
    ep.reader = nil
  end
end

--- Opens the component's store (its WAL or queue) under ctx.storage_path, creating the directory,
--- and logs what opening it repaired. Raises "creating the storage directory: ..." or
--- "opening the <what>: ..." (a component that cannot start).
---@param what string "WAL", "queue": names it in errors and logs
---@param open fun(path: string, opts: table): table|nil, string|nil
function M.open_storage(ctx, what, open, opts)
  local ok, mkerr = fs.mkdir_p(ctx.storage_path)
  if not ok then
    error("creating the storage directory: " .. mkerr, 0)
  end
  local store, err = open(ctx.storage_path, opts)
  if not store then
    error("opening the " .. what .. ": " .. err, 0)
  end
  local repairs = store:repair_log()
  if repairs ~= "" then
    ctx.log:warn("repaired the " .. what, { repairs = repairs })
  end
  return store
end

--- Sleeps (in the endpoint's task) up to seconds, or until scheduler.wake(ep.waiting) (new data,
--- a flush). false once the endpoint stops.
function M.wait(ep, seconds)
  ep.waiting = scheduler.current()
  local ok = pcall(scheduler.sleep, seconds)
  ep.waiting = nil
  return ok and not ep.stopped
end

--- At stop (in a task): sets self.flushing, then until no endpoint is busy(ep) or seconds passed,
--- wakes the waiting senders and looks again every 20 ms. false when time ran out.
function M.drain(self, seconds, busy)
  self.flushing = true
  local deadline = scheduler.now() + seconds
  while scheduler.now() < deadline do
    local any = false
    for _, ep in pairs(self.endpoints) do
      if ep.waiting then
        scheduler.wake(ep.waiting)
      end
      if busy(ep) then
        any = true
      end
    end
    if not any then
      return true
    end
    scheduler.sleep(0.02)
  end
  return false
end

--- The problems of the endpoints (self.endpoints) that failed failing_after attempts in a row
--- (ep.failures, ep.last_error), in the order of their names.
---@return string[]
function M.failing(self, failing_after)
  local problems, names = {}, {}
  for name in pairs(self.endpoints) do
    names[#names + 1] = name
  end
  table.sort(names)
  for _, name in ipairs(names) do
    local ep = self.endpoints[name]
    if ep.failures >= failing_after then
      problems[#problems + 1] = string.format("endpoint %s (%s): %d failed attempts in a row; last error: %s", name,
        redact.url(ep.cfg.url), ep.failures, ep.last_error or "")
    end
  end
  return problems
end

--- Sets the component's health from a list of problems: unhealthy with them joined, healthy
--- ("sending again") once they are gone after an unhealthy report.
function M.report_health(self, problems)
  if #problems > 0 then
    self.ctx:set_health("unhealthy", table.concat(problems, "; "))
    self.reported_unhealthy = true
  elseif self.reported_unhealthy then
    self.reported_unhealthy = false
    self.ctx:set_health("healthy", "sending again")
  end
end

return M
