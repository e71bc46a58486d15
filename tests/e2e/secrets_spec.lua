-- End-to-end: no secret of the pipeline ever leaves moonwatch in clear (issue 16, item 4).
-- A real, hostile receiver (fixtures/echo_headers.py) answers every request with 400 or 500
-- and a body that echoes the request's headers (Authorization, Proxy-Authorization, the
-- custom headers), control characters and 20 KB of filler; it also serves as the HTTP
-- proxy and the OAuth2 token endpoint. The pipeline, run through `moonwatch run` at debug
-- level, sends it every kind of secret: basic_auth and bearer_token, http_headers and
-- remote_write headers, a password in the URL's userinfo, proxy_url with a password,
-- proxy_connect_header, an oauth2 client_secret. Then the log, /metrics, every /api/v0
-- answer, /-/healthy, a failed reload's answer and the UI (its HTML, and each component's
-- page as Chromium renders it) are searched for each secret and for the base64 credentials
-- built from them: none may appear. Error bodies show only a short, clean excerpt.
local proc = require("helpers.proc")
local chromium = require("helpers.chromium")
local cjson = require("cjson")

local tmp = proc.tmpdir()

local S = {
  scrape_basic = "scrape-basic-pw-7Qz1",
  scrape_header = "scrape-header-val-9Kd2",
  url_password = "url-userinfo-pw-3Xc3",
  rw_header = "rw-header-val-5Lp4",
  rw_http_header = "rw-http-header-val-1Aa5",
  proxy_password = "proxy-url-pw-8Wn6",
  proxy_connect = "proxy-connect-val-2Hr7",
  bearer = "bearer-token-val-6Tm8",
  rw_basic = "rw-basic-pw-4Vb9",
  oauth_secret = "oauth-client-secret-0Zy0",
  target_password = "target-userinfo-pw-5Rf1",
}

local function b64(s)
  return (proc.sh("printf %s " .. string.format("%q", s):gsub("%$", "\\$") .. " | base64 -w0"))
end

-- every string that must not appear: the secrets and the basic credentials made of them
local FORBIDDEN = {}
for name, v in pairs(S) do
  FORBIDDEN[name] = v
end
FORBIDDEN["base64 scraper:scrape_basic"] = b64("scraper:" .. S.scrape_basic)
FORBIDDEN["base64 writer:url_password"] = b64("writer:" .. S.url_password)
FORBIDDEN["base64 proxier:proxy_password"] = b64("proxier:" .. S.proxy_password)
FORBIDDEN["base64 rw:rw_basic"] = b64("rw:" .. S.rw_basic)
FORBIDDEN["base64 client:oauth_secret"] = b64("client:" .. S.oauth_secret)
FORBIDDEN["base64 tgt:target_password"] = b64("tgt:" .. S.target_password)

local function assert_clean(what, text)
  for name, v in pairs(FORBIDDEN) do
    local at = text:find(v, 1, true)
    assert.is_nil(at, string.format("%s shows %s: ...%s...", what, name, at and text:sub(math.max(1, at - 80), at + 80)))
  end
  -- nothing of the receiver's echo but a bounded excerpt: no control characters from it
  assert.is_nil(text:find("\27[31m", 1, true), what .. " shows the receiver's escape sequences")
  assert.is_nil(text:find("filler filler filler filler filler filler filler filler filler filler filler filler filler "
    .. "filler filler filler filler filler filler filler filler filler filler filler filler filler filler", 1, true),
    what .. " shows more than an excerpt of the receiver's body")
end

describe("secrets", function()
  local h, port, file, recv_log

  local function get(path)
    local status, body = proc.http("GET", h.base .. path)
    return status, body
  end
  local function get_json(path)
    local _, body = get(path)
    return cjson.decode(body), body
  end
  local function component(id)
    return get_json("/api/v0/components/" .. id)
  end

  setup(function()
    recv_log = tmp .. "/received.log"
    port = proc.free_port()
    proc.spawn(string.format("python3 %s/tests/e2e/fixtures/echo_headers.py %d %s", proc.source, port, recv_log))
    proc.wait_http("http://127.0.0.1:" .. port .. "/ping")
    local recv = "127.0.0.1:" .. port
    file = proc.write(tmp .. "/secrets.lua", string.format([[
logging { level = "debug" }
prometheus.scrape "s" {
  targets = { { __address__ = %q, __metrics_path__ = "/status/500/scrape" } },
  forward_to = { prometheus.remote_write.w.receiver },
  scrape_interval = "1s", scrape_timeout = "1s",
  basic_auth = { username = "scraper", password = %q },
  http_headers = { ["X-Api-Key"] = %q },
}
prometheus.scrape "p" {
  targets = { { __address__ = "127.0.0.1:9", __metrics_path__ = "/status/400/proxied" } },
  forward_to = { prometheus.remote_write.w.receiver },
  scrape_interval = "1s", scrape_timeout = "1s",
  bearer_token = %q,
  proxy_url = "http://proxier:%s@%s",
  proxy_connect_header = { ["X-Proxy-Token"] = %q },
}
prometheus.scrape "o" {
  targets = { { __address__ = %q, __metrics_path__ = "/status/500/oauth-scrape" } },
  forward_to = { prometheus.remote_write.w.receiver },
  scrape_interval = "1s", scrape_timeout = "1s",
  oauth2 = { client_id = "client", client_secret = %q, token_url = "http://%s/status/400/token" },
}
prometheus.scrape "u" {
  targets = { { __address__ = "tgt:%s@%s", __metrics_path__ = "/status/500/userinfo-scrape" } },
  forward_to = { prometheus.remote_write.w.receiver },
  scrape_interval = "1s", scrape_timeout = "1s",
}
prometheus.remote_write "w" {
  endpoint = {
    { name = "userinfo", url = "http://writer:%s@%s/status/500/write", remote_timeout = "1s",
      headers = { ["X-Scope-OrgID"] = %q },
      queue_config = { batch_send_deadline = "1s", min_backoff = "100ms", max_backoff = "300ms" } },
    { name = "bearer", url = "http://%s/status/400/write", remote_timeout = "1s",
      bearer_token = %q, http_headers = { ["X-Api-Key"] = %q },
      queue_config = { batch_send_deadline = "1s" } },
    { name = "proxied", url = "http://127.0.0.1:9/status/500/write", remote_timeout = "1s",
      basic_auth = { username = "rw", password = %q },
      proxy_url = "http://proxier:%s@%s", proxy_connect_header = { ["X-Proxy-Token"] = %q },
      queue_config = { batch_send_deadline = "1s", min_backoff = "100ms", max_backoff = "300ms" } },
  },
}
]], recv, S.scrape_basic, S.scrape_header,
      S.bearer, S.proxy_password, recv, S.proxy_connect,
      recv, S.oauth_secret, recv,
      S.target_password, recv,
      S.url_password, recv, S.rw_header,
      recv, S.bearer, S.rw_http_header,
      S.rw_basic, S.proxy_password, recv, S.proxy_connect))
    h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data" })
    -- until every endpoint and target has failed against the receiver, and the 500 endpoints are stuck
    local deadline = os.time() + 30
    local ready
    repeat
      os.execute("sleep 0.5")
      local w = component("prometheus.remote_write.w")
      local errs = 0
      for _, ep in ipairs(w.debug_info.endpoints or {}) do
        errs = errs + (ep.last_error ~= "" and 1 or 0)
      end
      local scrapes = 0
      for _, id in ipairs({ "prometheus.scrape.s", "prometheus.scrape.p", "prometheus.scrape.o",
        "prometheus.scrape.u" }) do
        local t = component(id).debug_info.targets[1]
        scrapes = scrapes + ((t and t.last_error ~= "") and 1 or 0)
      end
      ready = errs == 3 and scrapes == 4 and w.health.state == "unhealthy"
        and w.health.message:find("userinfo", 1, true) and w.health.message:find("proxied", 1, true)
        and h.read():find("rejected a request", 1, true)
    until ready or os.time() > deadline
    assert.is_truthy(ready, "the receiver's errors did not show:\n" .. h.read())
  end)

  teardown(function()
    if h then
      h.kill("TERM")
      h.wait(10)
    end
    proc.kill_spawned()
  end)

  it("sends the secrets to the receiver, which echoes them", function()
    local f = assert(io.open(recv_log))
    local got = f:read("*a")
    f:close()
    for _, name in ipairs({ "scrape_basic", "url_password", "proxy_password", "rw_basic" }) do
      assert.matches(FORBIDDEN["base64 " .. ({ scrape_basic = "scraper:scrape_basic",
        url_password = "writer:url_password", proxy_password = "proxier:proxy_password",
        rw_basic = "rw:rw_basic" })[name]], got, 1, true)
    end
    for _, name in ipairs({ "scrape_header", "rw_header", "rw_http_header", "bearer" }) do
      assert.matches(S[name], got, 1, true)
    end
    assert.matches(FORBIDDEN["base64 client:oauth_secret"], got, 1, true)
  end)

  it("keeps them out of the log", function()
    assert_clean("the log", h.read())
  end)

  it("keeps them out of /metrics; url labels show the password as xxxxx", function()
    local _, body = get("/metrics")
    assert_clean("/metrics", body)
    assert.matches('url="http://writer:xxxxx@127.0.0.1:' .. port .. '/status/500/write"', body, 1, true)
    assert.is_nil(body:find("proxier:", 1, true))
  end)

  it("keeps them out of every /api/v0 answer", function()
    local list, body = get_json("/api/v0/components")
    assert_clean("/api/v0/components", body)
    assert.is_true(#list >= 4)
    for _, c in ipairs(list) do
      -- live debugging on, so the answers hold samples too
      proc.http("PUT", h.base .. "/api/v0/livedebugging/" .. c.id,
        { headers = { "Content-Type: application/json" }, body = '{"enabled":true}' })
    end
    os.execute("sleep 2")
    for _, c in ipairs(list) do
      local d, dbody = component(c.id)
      assert_clean("/api/v0/components/" .. c.id, dbody)
      assert.is_table(d.debug_info)
      local _, lbody = get("/api/v0/livedebugging/" .. c.id)
      assert_clean("/api/v0/livedebugging/" .. c.id, lbody)
    end
    for _, path in ipairs({ "/api/v0/graph", "/api/v0/livedebugging", "/-/healthy", "/" }) do
      local _, b = get(path)
      assert_clean(path, b)
    end
  end)

  it("shows each kind of secret redacted, and the receiver's error as a short clean excerpt", function()
    local w = component("prometheus.remote_write.w")
    local eps = {}
    for _, ep in ipairs(w.debug_info.endpoints) do
      eps[ep.name] = ep
    end
    assert.equals("http://writer:xxxxx@127.0.0.1:" .. port .. "/status/500/write", eps.userinfo.url)
    for _, ep in pairs(eps) do
      assert.matches("^server returned HTTP status %d%d%d: ", ep.last_error)
      assert.is_true(#ep.last_error <= 300, ep.last_error)
      assert.is_nil(ep.last_error:find("%c"))
    end
    -- the excerpt still says what the receiver said, with the credentials masked
    assert.matches("request rejected; you sent:", eps.userinfo.last_error, 1, true)
    assert.matches("Authorization: Basic xxxxx", eps.userinfo.last_error, 1, true)
    assert.matches("X-Scope-OrgID: xxxxx", eps.userinfo.last_error, 1, true)
    local args = w.arguments.endpoint
    assert.equals("http://writer:xxxxx@127.0.0.1:" .. port .. "/status/500/write", args[1].url)
    assert.same({ ["X-Scope-OrgID"] = "(secret)" }, args[1].headers)
    assert.equals("(secret)", args[2].bearer_token)
    assert.same({ ["X-Api-Key"] = "(secret)" }, args[2].http_headers)
    assert.equals("(secret)", args[3].basic_auth.password)
    assert.equals("http://proxier:xxxxx@127.0.0.1:" .. port, args[3].proxy_url)
    assert.same({ ["X-Proxy-Token"] = "(secret)" }, args[3].proxy_connect_header)
    assert.matches("last error: server returned HTTP status 500: request rejected", w.health.message, 1, true)
    local o = component("prometheus.scrape.o")
    assert.equals("(secret)", o.arguments.oauth2.client_secret)
    assert.matches("^oauth2: cannot fetch token: HTTP 400: request rejected", o.debug_info.targets[1].last_error)
    assert.is_true(#o.debug_info.targets[1].last_error <= 300)
  end)

  it("keeps them out of a failed reload's answer and its log", function()
    local good = io.open(file):read("*a")
    proc.write(file, good .. '\nprometheus.scrape "bad" { targets = {}, forward_to = {}, scrape_interval = "x" }\n')
    local status, body = proc.http("POST", h.base .. "/-/reload")
    assert.equals(400, status)
    assert_clean("the reload's answer", body)
    proc.write(file, good)
    assert_clean("the log", h.read())
  end)

  it("keeps a URL's password out of check's problems", function()
    local bad = proc.write(tmp .. "/bad.lua", string.format([[
prometheus.scrape "x" { targets = {}, forward_to = {}, scrape_interval = "http://u:%s@host/" }
]], S.url_password))
    local code, out, err = proc.run({ "check", bad })
    assert.equals(1, code)
    assert.matches("scrape_interval", err, 1, true)
    assert_clean("check's output", out .. err)
  end)

  it("keeps them out of the UI's pages as Chromium renders them", function()
    local b = chromium.start()
    local ok, err = pcall(function()
      b:navigate(h.base .. "/")
      b:wait([[document.querySelectorAll("g.node").length >= 4]])
      assert_clean("the graph page", b:eval("document.documentElement.outerHTML"))
      for _, id in ipairs({ "prometheus.scrape.s", "prometheus.scrape.p", "prometheus.scrape.o",
        "prometheus.remote_write.w" }) do
        b:navigate(h.base .. "/#/component/" .. id)
        b:wait(string.format([[document.getElementById("c-title").textContent.startsWith(%q)
          && document.body.innerText.includes("Debug info")
          && document.body.innerText.includes("last_error")]], id:match("^(.*)%.[^.]+$")))
        os.execute("sleep 1.5") -- the live view refreshes every second
        assert_clean("the page of " .. id, b:eval("document.documentElement.outerHTML"))
        assert_clean("the page of " .. id, b:eval("document.body.innerText"))
      end
    end)
    b:close()
    assert(ok, err)
  end)
end)
