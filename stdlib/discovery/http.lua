--- discovery.http: targets from an HTTP endpoint (Prometheus's HTTP SD), as Alloy's
--- discovery.http. Every refresh_interval the url is fetched with GET; the response must be
--- 200 with Content-Type application/json (charset utf-8 allowed) and a JSON list of target
--- groups. Each target gets its group's labels, __address__ and __meta_url. A failed
--- refresh (transport error, another status, another content type, bad JSON, a body over
--- 16 MiB) keeps the last good targets, counts prometheus_sd_http_failures_total and makes
--- the component unhealthy with the reason; the next good refresh makes it healthy again.
local httpconfig = require("moonwatch.httpconfig")
local http_client = require("moonwatch.http_client")
local targetgroup = require("moonwatch.targetgroup")
local metrics = require("moonwatch.metrics")
local ffi_rt = require("moonwatch.ffi")

local Instance = {}
Instance.__index = Instance

local M = {
  name = "discovery.http",
  doc = "Discovers targets from an HTTP endpoint that serves Prometheus HTTP SD target groups.",
  args = {
    url = { type = "string", required = true, doc = "URL to scrape for targets." },
    refresh_interval = { type = "duration", default = "60s", positive = true,
      doc = "How often to refresh targets." },
  },
  exports = {
    targets = { type = "targets", doc = "The targets of every group, with __meta_url." },
  },
}
httpconfig.add_args(M.args)
M.exclusive = { httpconfig.AUTH_EXCLUSIVE }

M.MAX_BODY = 16 * 1024 * 1024
M.MAX_TARGETS = 100000

function M.validate(args)
  if type(args.url) == "string" and not args.url:match("^https?://[^/]") then
    return string.format("url %q: the URL scheme must be http or https", args.url)
  end
  return http_client.validate(httpconfig.client_config(args))
end

local fam
local function families()
  if not fam then
    fam = {
      failures = metrics.default:counter("prometheus_sd_http_failures_total",
        "Number of HTTP service discovery refresh failures.", { "component_id" }),
    }
  end
  return fam
end

-- Prometheus's matchContentType: application/json, optionally with charset utf-8.
local function json_content_type(ct)
  ct = (ct or ""):gsub("^%s+", ""):gsub("%s+$", ""):lower()
  if ct == "application/json" then
    return true
  end
  local cs = ct:match("^application/json;%s*charset=(.*)$")
  return cs == "utf-8" or cs == '"utf-8"'
end

function M.new(ctx, args)
  local self = setmetatable({ ctx = ctx, m = families(), targets = 0 }, Instance)
  self:configure(args)
  ctx:set_health("unknown", "waiting for the first refresh")
  return self
end

function Instance:configure(args)
  local client, err = http_client.new(httpconfig.client_config(args))
  if not client then
    error(err, 0)
  end
  self.client, self.args = client, args
  -- a refresh started under older arguments is thrown away when it ends
  self.generation = (self.generation or 0) + 1
end

function Instance:update(args)
  self:configure(args)
  self.ctx:spawn(function() -- at once with the new arguments
    self:refresh()
  end, self.ctx.id .. " refresh")
end

-- One refresh: the targets, or nil and why not.
function Instance:fetch()
  local args = self.args
  local resp, err = self.client:request({
    url = args.url,
    timeout = args.refresh_interval,
    max_body = M.MAX_BODY,
    user_agent = "moonwatch/" .. ffi_rt.version(),
    headers = { Accept = "application/json",
      ["X-Prometheus-Refresh-Interval-Seconds"] = string.format("%.9g", args.refresh_interval) },
  })
  if not resp then
    return nil, err
  end
  if resp.status ~= 200 then
    return nil, string.format("server returned HTTP status %d", resp.status)
  end
  if not json_content_type(resp.headers["content-type"]) then
    return nil, string.format("unsupported content type %q", resp.headers["content-type"] or "")
  end
  local doc, derr = targetgroup.decode_json(resp.body)
  if derr then
    return nil, derr
  end
  if doc == nil or doc == require("cjson").null then
    return nil, "expected a list of target groups, got null"
  end
  return targetgroup.targets(doc, { __meta_url = args.url }, M.MAX_TARGETS)
end

function Instance:refresh()
  local ctx = self.ctx
  local generation = self.generation
  local targets, err = self:fetch()
  if generation ~= self.generation then
    return -- the arguments changed meanwhile: what the old ones gave is out of date
  end
  self.last_refresh = os.time()
  if not targets then
    self.m.failures:with(ctx.id):inc()
    self.last_error = err
    ctx.log:error("Unable to refresh target groups", { err = err })
    ctx:set_health("unhealthy", string.format("refresh failed (the last good targets are kept): %s", err))
    return
  end
  self.last_error, self.targets = nil, #targets
  ctx:set_health("healthy", "")
  ctx:export({ targets = targets })
end

function Instance:run()
  while true do
    self:refresh()
    self.ctx:sleep(self.args.refresh_interval)
  end
end

function Instance:debug_info()
  return { targets = self.targets, last_error = self.last_error }
end

return M
