--- moonwatch.httpconfig: the HTTP client arguments that Alloy components share
--- (prometheus.scrape, prometheus.remote_write endpoints, ...), as schema entries,
--- and their translation into a moonwatch.http_client config.
local redact = require("moonwatch.redact")

local M = {}

-- sensitive: the debug API and the UI show its keys, never its values
local secret_list_map = { type = "map", of = { type = "list", of = { type = "secret" }, single = true }, sensitive = true,
  doc = "Map of header name to a value or list of values (secrets)." }

local TLS = {
  args = {
    ca_pem = { type = "string", doc = "CA PEM-encoded text to validate the server with." },
    ca_file = { type = "string", doc = "CA certificate to validate the server with." },
    cert_pem = { type = "string", doc = "Certificate PEM-encoded text for client authentication." },
    cert_file = { type = "string", doc = "Certificate file for client authentication." },
    insecure_skip_verify = { type = "bool", default = false, doc = "Disables validation of the server certificate." },
    key_file = { type = "string", doc = "Key file for client authentication." },
    key_pem = { type = "secret", doc = "Key PEM-encoded text for client authentication." },
    min_version = { type = "string", enum = { "TLS10", "TLS11", "TLS12", "TLS13" }, doc = "Minimum TLS version." },
    server_name = { type = "string", doc = "ServerName extension to indicate the name of the server." },
  },
  exclusive = { { "ca_pem", "ca_file" }, { "cert_pem", "cert_file" }, { "key_pem", "key_file" } },
}
M.TLS = TLS


--- The shared arguments: add them to a component's or block's schema args.
M.ARGS = {
  enable_http2 = { type = "bool", default = true, doc = "Whether HTTP2 is supported for requests." },
  follow_redirects = { type = "bool", default = true, doc = "Whether redirects should be followed." },
  http_headers = secret_list_map,
  bearer_token = { type = "secret", doc = "Bearer token to authenticate with." },
  bearer_token_file = { type = "string", doc = "File containing a bearer token to authenticate with." },
  proxy_url = { type = "string", doc = "HTTP proxy to send requests through." },
  no_proxy = { type = "string", doc = "Comma-separated hosts to exclude from proxying." },
  proxy_from_environment = { type = "bool", default = false, doc = "Use the proxy URL from the environment." },
  proxy_connect_header = secret_list_map,
  basic_auth = { type = "block", optional = true, doc = "Basic authentication.", schema = {
    args = {
      username = { type = "string", doc = "Basic auth username." },
      password = { type = "secret", doc = "Basic auth password." },
      password_file = { type = "string", doc = "File containing the basic auth password." },
    },
    exclusive = { { "password", "password_file" } },
  } },
  authorization = { type = "block", optional = true, doc = "Authorization header.", schema = {
    args = {
      type = { type = "string", default = "Bearer", doc = "Authorization type." },
      credentials = { type = "secret", doc = "Secret value." },
      credentials_file = { type = "string", doc = "File containing the secret value." },
    },
    exclusive = { { "credentials", "credentials_file" } },
  } },
  oauth2 = { type = "block", optional = true, doc = "OAuth2 client credentials.", schema = {
    args = {
      client_id = { type = "string", doc = "OAuth2 client ID." },
      client_secret = { type = "secret", doc = "OAuth2 client secret." },
      client_secret_file = { type = "string", doc = "File containing the OAuth2 client secret." },
      endpoint_params = { type = "map", default = {}, doc = "Parameters appended to the token URL." },
      scopes = { type = "list", of = { type = "string" }, default = {}, doc = "Scopes to authenticate with." },
      token_url = { type = "string", doc = "URL to fetch the token from." },
      proxy_url = { type = "string", doc = "HTTP proxy for the token request." },
      no_proxy = { type = "string", doc = "Hosts to exclude from proxying." },
      proxy_from_environment = { type = "bool", default = false, doc = "Use the proxy from the environment." },
      proxy_connect_header = secret_list_map,
      tls_config = { type = "block", optional = true, schema = TLS, doc = "TLS for the token request." },
    },
    exclusive = { { "client_secret", "client_secret_file" } },
  } },
  tls_config = { type = "block", optional = true, schema = TLS, doc = "TLS settings." },
}

--- s with the password of every URL in it replaced by "xxxxx", as Go's url.Redacted()
--- and Prometheus show one (http://user:xxxxx@host/...): for metric labels, debug info,
--- messages. A string without such a URL comes back unchanged.
---@param s string
---@return string
function M.redact_url(s)
  return redact.url(s)
end

--- At most one way to authenticate.
M.AUTH_EXCLUSIVE = { "bearer_token", "bearer_token_file", "basic_auth", "authorization", "oauth2" }

--- Adds the shared arguments to args (a schema's args table); returns args.
function M.add_args(args)
  for k, v in pairs(M.ARGS) do
    args[k] = v
  end
  return args
end

--- The moonwatch.http_client config of validated arguments: the values of the arguments in ARGS.
function M.client_config(a)
  local cfg = {}
  for k in pairs(M.ARGS) do
    cfg[k] = a[k]
  end
  return cfg
end

return M
