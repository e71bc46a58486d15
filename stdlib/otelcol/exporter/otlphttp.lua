--- otelcol.exporter.otlphttp: sends the traces it gets (its `input`, e.g. from the tracing
-- block's write_to) over OTLP/HTTP: POST ExportTraceServiceRequest (protobuf, or OTLP/JSON with
-- encoding = "json") to traces_endpoint (default client.endpoint .. "/v1/traces"), gzip by
-- default, through an in-memory sending queue with retries, as the OpenTelemetry Collector's
-- otlphttp exporter (moonwatch.otlp_exporter). Retried: network errors, 429, 502, 503, 504
-- (Retry-After honoured); any other status drops the batch (counted in
-- otelcol_exporter_send_failed_spans_total).
local otlp_exporter = require("moonwatch.otlp_exporter")
local otlp = require("moonwatch.native.otlp")
local http_client = require("moonwatch.http_client")
local push_endpoint = require("moonwatch.push_endpoint")
local redact = require("moonwatch.redact")

local M = {
  name = "otelcol.exporter.otlphttp",
  doc = "Sends traces over the network with OTLP over HTTP (protobuf or JSON), as Alloy's.",
}

local CLIENT = otlp_exporter.client_args(
  "The target base URL (http:// or https://); traces go to endpoint .. \"/v1/traces\" unless traces_endpoint.",
  "30s")

local function check_url(u, what)
  if not u:match("^https?://[^/]") then
    return what .. ": must start with http:// or https:// and name a host"
  end
end

M.args = {
  client = { type = "block", required = true, doc = "The HTTP client.", schema = { args = CLIENT,
    validate = function(c)
      return check_url(c.endpoint, "endpoint")
    end } },
  traces_endpoint = { type = "string", doc = "The endpoint to send traces to (default client.endpoint .. \"/v1/traces\").",
    check = function(v)
      local e = check_url(v, "traces_endpoint")
      if e then
        return nil, e
      end
    end },
  encoding = { type = "string", default = "proto", enum = { "proto", "json" },
    doc = "The encoding of the requests: \"proto\" (application/x-protobuf) or \"json\" (application/json)." },
  retry_on_failure = otlp_exporter.RETRY,
  sending_queue = otlp_exporter.QUEUE,
}

M.exports = otlp_exporter.EXPORTS

local RETRYABLE = { [429] = true, [502] = true, [503] = true, [504] = true }
-- Headers a custom one never sets: the body's encoding is the exporter's (none without gzip).
local RESERVED = { ["content-encoding"] = true }

local transport = {}

function transport.prepare(self, args)
  local c = args.client
  self.url = args.traces_endpoint or (c.endpoint:gsub("/+$", "") .. "/v1/traces")
  self.url_shown = redact.url(self.url)
  self.client = assert(http_client.new({ tls_config = otlp_exporter.tls_config(c.tls), follow_redirects = false }))
  redact.register_url(self.client, self.url)
end

function transport.encode(self, b)
  local body, err = otlp_exporter.encode(b, self.args.encoding == "json")
  if body and self.args.client.compression == "gzip" then
    return otlp.gzip(body)
  end
  return body, err
end

function transport.send(self, body)
  local c, json = self.args.client, self.args.encoding == "json"
  local headers = { ["Content-Type"] = json and "application/json" or "application/x-protobuf" }
  if c.compression == "gzip" then
    headers["Content-Encoding"] = "gzip"
  end
  -- the protocol's headers win over custom ones, as push_endpoint's (the Collector's confighttp
  -- sets custom headers over them: a body that its headers then misdescribe)
  push_endpoint.merge_headers(headers, c.headers, RESERVED)
  local resp, err = self.client:request({ method = "POST", url = self.url, body = body, headers = headers,
    timeout = c.timeout, max_body = push_endpoint.MAX_RESPONSE, truncate_body = true,
    user_agent = "moonwatch/" .. (require("moonwatch.ffi").version()) })
  if not resp then
    return "retry", err
  end
  local status = resp.status
  if status >= 200 and status < 300 then
    return "sent"
  end
  local why = string.format("server returned HTTP status %d: %s", status, redact.excerpt(resp.body))
  if RETRYABLE[status] then
    return "retry", why, push_endpoint.retry_after(resp.headers, nil)
  end
  return "permanent", why
end

function M.new(ctx, args)
  return otlp_exporter.new(ctx, args, transport)
end

return M
