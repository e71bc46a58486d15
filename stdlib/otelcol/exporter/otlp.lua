--- otelcol.exporter.otlp: sends the traces it gets (its `input`, e.g. from the tracing block's
-- write_to) over OTLP/gRPC: the TraceService/Export call over HTTP/2 with libcurl (h2c with
-- prior knowledge when tls { insecure = true }, else TLS with ALPN h2): one length-prefixed
-- ExportTraceServiceRequest (gzip-compressed with grpc-encoding: gzip by default), content-type
-- application/grpc, te: trailers; the result is the grpc-status (and grpc-message) of the
-- response's trailers. Through an in-memory sending queue with retries, as the OpenTelemetry
-- Collector's otlp exporter (moonwatch.otlp_exporter). Retried, as exporterhelper: the codes
-- CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS and network errors;
-- any other code drops the batch (RESOURCE_EXHAUSTED too: the Collector retries it only with a
-- RetryInfo detail, which moonwatch does not read).
local otlp_exporter = require("moonwatch.otlp_exporter")
local otlp = require("moonwatch.native.otlp")
local http_client = require("moonwatch.http_client")
local redact = require("moonwatch.redact")
local push_endpoint = require("moonwatch.push_endpoint")

local M = {
  name = "otelcol.exporter.otlp",
  doc = "Sends traces over the network with OTLP over gRPC (HTTP/2), as Alloy's.",
}

local CLIENT = otlp_exporter.client_args(
  "host:port of the gRPC server (e.g. \"tempo:4317\"); TLS unless tls { insecure = true }.", "5s")
CLIENT.authority = { type = "string", doc = "Overrides the :authority of the requests (default: endpoint)." }

M.args = {
  client = { type = "block", required = true, doc = "The gRPC client.", schema = { args = CLIENT,
    validate = function(c)
      local ep = c.endpoint:gsub("^dns:///", "")
      if ep:match("^%a[%w+.-]*://") then
        return "endpoint: host:port without a scheme (TLS is set in the tls block)"
      end
      if ep:find("@", 1, true) then -- (not shown: what is before the @ may be a password)
        return "endpoint: host:port without user information (credentials go in headers)"
      end
      if not ep:match("^[^/%s]+:%d+$") and not ep:match("^%[[%x:]+%]:%d+$") then
        return "endpoint: expected host:port, got " .. string.format("%q", c.endpoint)
      end
    end } },
  retry_on_failure = otlp_exporter.RETRY,
  sending_queue = otlp_exporter.QUEUE,
}

M.exports = otlp_exporter.EXPORTS

M.PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
-- gRPC codes exporterhelper retries (others are permanent)
local RETRYABLE = { [1] = true, [4] = true, [10] = true, [11] = true, [14] = true, [15] = true }
local CODE_NAMES = { [0] = "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
  "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED" }
-- Headers a custom one never sets (grpc-go's reserved ones: it sends its own, or none): the
-- protocol's headers win over custom ones (push_endpoint.merge_headers), as grpc-go's.
local RESERVED = { ["content-type"] = true, ["user-agent"] = true, te = true, ["grpc-encoding"] = true,
  ["grpc-timeout"] = true, ["grpc-message-type"] = true, ["grpc-message"] = true, ["grpc-status"] = true,
  ["grpc-status-details-bin"] = true, ["grpc-accept-encoding"] = true }
-- gRPC's mapping of an HTTP status without grpc-status to a code
local HTTP_CODES = { [400] = 13, [401] = 16, [403] = 7, [404] = 12, [429] = 14, [502] = 14, [503] = 14, [504] = 14 }

--- The gRPC message frame of body: compressed flag, 4-byte big-endian length, bytes.
function M.frame(body, compressed)
  local n = #body
  return string.char(compressed and 1 or 0, math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256, n % 256) .. body
end

--- The grpc-timeout header of a timeout in seconds: gRPC's TimeoutValue has at most 8 digits and
--- a unit; milliseconds when they fit, microseconds under one (never "0m": grpc-go takes it as
--- already expired), else seconds, minutes or hours. Rounded up.
function M.grpc_timeout(seconds)
  local ms = seconds * 1000
  if ms < 1 then
    return string.format("%du", math.max(1, math.ceil(seconds * 1e6 - 1e-6)))
  end
  for _, u in ipairs({ { "m", 1e-3 }, { "S", 1 }, { "M", 60 }, { "H", 3600 } }) do
    local v = math.ceil(seconds / u[2] - 1e-6)
    if v <= 99999999 then
      return string.format("%d%s", v, u[1])
    end
  end
  return "99999999H"
end

-- grpc-message is percent-encoded
local function unpercent(s)
  return (s:gsub("%%(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end))
end

local transport = {}

function transport.prepare(self, args)
  local c = args.client
  local tls = c.tls
  local ep = c.endpoint:gsub("^dns:///", "")
  self.url = (tls.insecure and "http://" or "https://") .. ep .. M.PATH
  self.url_shown = self.url
  self.client = assert(http_client.new({ tls_config = otlp_exporter.tls_config(tls), follow_redirects = false }))
end

function transport.encode(self, b)
  local body, err = otlp_exporter.encode(b, false)
  if not body then
    return nil, err
  end
  local gz = self.args.client.compression == "gzip"
  if gz then
    body, err = otlp.gzip(body)
    if not body then
      return nil, err
    end
  end
  return M.frame(body, gz)
end

--- The outcome of a gRPC response: "sent"; "retry", err; "permanent", err.
function M.classify(resp)
  local h = resp.headers
  -- as grpc-go: an HTTP status other than 200 is the error, whatever grpc-status says
  local code = resp.status == 200 and tonumber(h["grpc-status"]) or nil
  if not code then
    code = resp.status == 200 and 13 or (HTTP_CODES[resp.status] or 2)
    local why = string.format("rpc error: code = %s desc = HTTP status %d%s", CODE_NAMES[code], resp.status,
      resp.status == 200 and " without grpc-status" or "")
    return RETRYABLE[code] and "retry" or "permanent", why
  end
  if code == 0 then
    return "sent"
  end
  local why = string.format("rpc error: code = %s desc = %s", CODE_NAMES[code] or tostring(code),
    redact.excerpt(unpercent(h["grpc-message"] or "")))
  return RETRYABLE[code] and "retry" or "permanent", why
end

function transport.send(self, body)
  local c = self.args.client
  local headers = { ["Content-Type"] = "application/grpc", ["TE"] = "trailers", ["grpc-accept-encoding"] = "gzip",
    ["grpc-timeout"] = M.grpc_timeout(c.timeout) }
  if c.compression == "gzip" then
    headers["grpc-encoding"] = "gzip"
  end
  if c.authority then
    headers["Host"] = c.authority
  end
  push_endpoint.merge_headers(headers, c.headers, RESERVED)
  local resp, err = self.client:request({ method = "POST", url = self.url, body = body, headers = headers,
    timeout = c.timeout, http2_prior_knowledge = true, max_body = push_endpoint.MAX_RESPONSE, truncate_body = true,
    user_agent = "moonwatch/" .. (require("moonwatch.ffi").version()) .. " grpc-c/libcurl" })
  if not resp then
    return "retry", "rpc error: code = Unavailable desc = " .. tostring(err)
  end
  return M.classify(resp)
end

function M.new(ctx, args)
  return otlp_exporter.new(ctx, args, transport)
end

return M
