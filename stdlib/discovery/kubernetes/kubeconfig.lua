--- A kubeconfig file's current context as discovery.kubernetes's API server URL and HTTP
--- client config: the cluster's server, certificate-authority(-data), insecure-skip-tls-verify,
--- tls-server-name and proxy-url; the user's token and tokenFile (the file wins, as in
--- client-go), client-certificate(-data) and client-key(-data), or username and password.
--- Exec and auth-provider plugins are refused.
--- Relative paths are relative to the file's directory, as kubectl reads them.
local filesd = require("moonwatch.native.filesd")
local schema = require("moonwatch.schema")
local targetgroup = require("moonwatch.targetgroup")
local cjson = require("cjson")

local M = {}

M.MAX_BYTES = 4 * 1024 * 1024

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64INV = {}
for i = 1, 64 do
  B64INV[B64:byte(i)] = i - 1
end

--- Standard base64 (padding optional, white space ignored) decoded; nil for bad input.
---@param s string
---@return string|nil
function M.base64_decode(s)
  s = s:gsub("%s", ""):gsub("=+$", "")
  local out, bits, nbits = {}, 0, 0
  for i = 1, #s do
    local v = B64INV[s:byte(i)]
    if not v then
      return nil
    end
    bits, nbits = bits * 64 + v, nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      local byte = math.floor(bits / 2 ^ nbits)
      out[#out + 1] = string.char(byte)
      bits = bits - byte * 2 ^ nbits
    end
  end
  return table.concat(out)
end

local function named(list, name, what, path)
  for _, e in ipairs(type(list) == "table" and list or {}) do
    if type(e) == "table" and e.name == name then
      return type(e[what]) == "table" and e[what] or {}
    end
  end
  return nil, string.format("%s: %s %q not found", path, what, tostring(name))
end

--- Loads path: the server URL and an http_client config, or nil, err naming the file.
---@param path string
---@return string|nil url, table|string cfg_or_err
function M.load(path)
  local f, err = io.open(path, "rb")
  if not f then
    return nil, "kubeconfig_file: " .. err
  end
  local text = f:read(M.MAX_BYTES + 1) or ""
  f:close()
  if #text > M.MAX_BYTES then
    return nil, string.format("kubeconfig_file %s: larger than %d bytes", path, M.MAX_BYTES)
  end
  local json, yerr = filesd.yaml_to_json(text, 4 * M.MAX_BYTES)
  local doc, derr
  if json then
    doc, derr = targetgroup.decode_json(json)
  end
  if not doc or type(doc) ~= "table" then
    return nil, string.format("kubeconfig_file %s: %s", path, yerr or derr or "not a kubeconfig")
  end
  local dir = path:match("^(.*)/[^/]*$") or "."
  local function rel(p)
    if type(p) ~= "string" or p == "" then
      return nil
    end
    return p:sub(1, 1) == "/" and p or (dir .. "/" .. p)
  end
  local ctxname = doc["current-context"]
  if type(ctxname) ~= "string" or ctxname == "" then
    return nil, string.format("kubeconfig_file %s: no current-context", path)
  end
  local context, cerr = named(doc.contexts, ctxname, "context", path)
  if not context then
    return nil, cerr
  end
  local cluster, kerr = named(doc.clusters, context.cluster, "cluster", path)
  if not cluster then
    return nil, kerr
  end
  local user = {}
  if context.user and context.user ~= cjson.null then
    local uerr
    user, uerr = named(doc.users, context.user, "user", path)
    if not user then
      return nil, uerr
    end
  end
  if type(cluster.server) ~= "string" or not cluster.server:match("^https?://") then
    return nil, string.format("kubeconfig_file %s: cluster %q has no http(s) server", path, tostring(context.cluster))
  end
  if user.exec or user["auth-provider"] then
    return nil, string.format("kubeconfig_file %s: user %q: exec and auth-provider plugins are not supported",
      path, tostring(context.user))
  end
  local tls = {}
  local function pem(data, file, field)
    if type(data) == "string" and data ~= "" then
      local v = M.base64_decode(data)
      if not v then
        return nil, string.format("kubeconfig_file %s: %s is not base64", path, field)
      end
      return v
    end
    return nil, nil, rel(file)
  end
  local v, e, file = pem(cluster["certificate-authority-data"], cluster["certificate-authority"],
    "certificate-authority-data")
  if e then
    return nil, e
  end
  tls.ca_pem, tls.ca_file = v, file
  v, e, file = pem(user["client-certificate-data"], user["client-certificate"], "client-certificate-data")
  if e then
    return nil, e
  end
  tls.cert_pem, tls.cert_file = v, file
  v, e, file = pem(user["client-key-data"], user["client-key"], "client-key-data")
  if e then
    return nil, e
  end
  tls.key_pem, tls.key_file = v, file
  tls.insecure_skip_verify = cluster["insecure-skip-tls-verify"] == true or cluster["insecure-skip-tls-verify"] == "true"
  if type(cluster["tls-server-name"]) == "string" and cluster["tls-server-name"] ~= "" then
    tls.server_name = cluster["tls-server-name"]
  end
  local cfg = { tls_config = tls }
  if type(cluster["proxy-url"]) == "string" and cluster["proxy-url"] ~= "" then
    cfg.proxy_url = cluster["proxy-url"]
  end
  -- (secrets: masked in whatever moonwatch shows while they live)
  local token = type(user.token) == "string" and user.token ~= "" and schema.secret(user.token) or nil
  if type(user.tokenFile) == "string" and user.tokenFile ~= "" then
    -- client-go (clientcmd, then transport's bearer round tripper): with token and tokenFile,
    -- the file's content is sent (read again as it changes), the token only while the file
    -- cannot be read or is empty
    cfg.bearer_token_file, cfg.bearer_token_fallback = rel(user.tokenFile), token
  elseif token then
    cfg.bearer_token = token
  elseif type(user.username) == "string" and user.username ~= "" then
    cfg.basic_auth = { username = user.username,
      password = schema.secret(type(user.password) == "string" and user.password or "") }
  end
  return (cluster.server:gsub("/+$", "")), cfg
end

return M
