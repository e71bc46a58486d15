local httpc = require("moonwatch.httpc")
local http_client = require("moonwatch.http_client")
local http_server = require("moonwatch.http_server")
local oauth2 = require("moonwatch.oauth2")
local scheduler = require("moonwatch.scheduler")
local schema = require("moonwatch.schema")
local log = require("moonwatch.log")
local loop = require("helpers.loop")
local proc = require("helpers.proc")
local ffi = require("ffi")

-- Runs fn in a scheduler task and the loop until it ends; returns its results.
local function run(fn, timeout)
  local res
  local task = scheduler.spawn(function()
    res = { fn() }
  end, { name = "spec" })
  loop.run_until(function()
    return task.done
  end, timeout or 15)
  assert(task.done, "task did not finish")
  if not task.ok then
    error(task.err, 0)
  end
  return unpack(res)
end

local function sh(cmd)
  return proc.sh("(" .. cmd .. ") 2>&1")
end

local GZ_TEXT = "# TYPE up gauge\nup 1\n" .. string.rep("metric_total 42\n", 50)

describe("http client", function()
  local srv, base, seen, token_requests
  local gz_body

  setup(function()
    log.configure({ out = { write = function() end, flush = function() end } })
    local dir = proc.tmpdir()
    proc.write(dir .. "/plain", GZ_TEXT)
    sh("gzip -c " .. dir .. "/plain > " .. dir .. "/plain.gz")
    local f = assert(io.open(dir .. "/plain.gz", "rb"))
    gz_body = f:read("*a")
    f:close()
    os.execute("rm -rf " .. proc.quote(dir))

    srv = assert(http_server.listen("127.0.0.1:0"))
    base = "http://" .. srv:addr()
    local function remember(req)
      seen = { method = req.method, path = req.path, headers = req.headers, body = req.body }
    end
    srv:route("*", "/hello", function(req)
      remember(req)
      return 200, "hello", { ["Content-Type"] = "text/plain; version=0.0.4", ["X-Test"] = "yes" }
    end)
    srv:route("POST", "/echo", function(req)
      remember(req)
      return 200, req.body, { ["Content-Type"] = req.headers["content-type"] }
    end)
    srv:route("GET", "/redirect", function()
      return 302, "moved", { Location = "/hello" }
    end)
    srv:route("GET", "/busy", function()
      return 503, "busy", { ["Retry-After"] = "120" }
    end)
    srv:route("GET", "/slow", function()
      scheduler.sleep(1)
      return 200, "slow"
    end)
    srv:route("GET", "/big", function()
      return 200, string.rep("x", 100000)
    end)
    srv:route("GET", "/gzip", function(req)
      remember(req)
      return 200, gz_body, { ["Content-Encoding"] = "gzip" }
    end)
    srv:route("POST", "/token", function(req)
      remember(req)
      token_requests = (token_requests or 0) + 1
      if req.headers.authorization ~= "Basic " .. "aWQlMjAxOnMlM0FjcmV0" then -- "id%201:s%3Acret"
        return 401, '{"error":"invalid_client"}'
      end
      return http_server.json(200, { access_token = "tok-" .. token_requests, token_type = "bearer", expires_in = 3600 })
    end)
  end)

  teardown(function()
    srv:close()
    log.configure({ out = io.stderr })
  end)

  before_each(function()
    seen = nil
  end)

  describe("moonwatch.httpc", function()
    it("calls back with status, lowercased headers, body and duration", function()
      local got
      local h = assert(httpc.request({ url = base .. "/hello", timeout = 5 }, function(resp)
        got = resp
      end))
      assert.is_true(h:active())
      loop.run_until(function()
        return got
      end)
      assert.is_false(h:active())
      assert.equals(200, got.status)
      assert.equals("hello", got.body)
      assert.equals("yes", got.headers["x-test"])
      assert.equals("text/plain; version=0.0.4", got.headers["content-type"])
      assert.is_false(got.gzip)
      assert.is_nil(got.err)
      assert.equals(base .. "/hello", got.url)
      assert.is_true(got.duration > 0 and got.duration < 5)
      assert.matches("^moonwatch/", seen.headers["user-agent"])
      -- the pooled connection is reused for the next request to the host
      got = nil
      assert(httpc.request({ url = base .. "/hello", timeout = 5 }, function(resp)
        got = resp
      end))
      loop.run_until(function()
        return got
      end)
      assert.equals(200, got.status)
      assert.equals(0, got.new_connections)
    end)

    it("never calls back a cancelled request", function()
      local called = false
      local h = assert(httpc.request({ url = base .. "/slow", timeout = 5 }, function()
        called = true
      end))
      loop.run_for(0.1)
      assert.equals(1, httpc.pending())
      h:cancel()
      h:cancel() -- twice is fine
      assert.equals(0, httpc.pending())
      loop.run_for(1.2)
      assert.is_false(called)
    end)

    it("reports bad options as nil, err or an error", function()
      local h, err = httpc.request({ url = "ftp://x/" }, function() end)
      assert.is_nil(h)
      assert.matches("unsupported protocol scheme", err)
      assert.has_error(function()
        httpc.request({ url = base, timeout = "soon" }, function() end)
      end, "httpc.request: timeout must be a number")
      assert.has_error(function()
        httpc.request({ url = base, min_version = "TLS9" }, function() end)
      end, "httpc.request: unknown TLS version TLS9")
    end)

    it("keeps a body in C for FFI consumers and inflates it there", function()
      local got
      assert(httpc.request({ url = base .. "/gzip", accept_gzip = true, keep_body = true }, function(resp)
        got = resp
      end))
      loop.run_until(function()
        return got
      end)
      assert.equals("gzip", seen.headers["accept-encoding"])
      assert.is_true(got.gzip)
      local body = got.body
      assert.equals("userdata", type(body))
      assert.equals(#gz_body, body:len())
      assert.equals(#gz_body, #body)
      assert.equals(gz_body, ffi.string(ffi.cast("const char *", body:ptr()), body:len()))
      local plain = assert(body:gunzip(1e6))
      assert.equals(GZ_TEXT, plain:string())
      assert.equals(GZ_TEXT, ffi.string(ffi.cast("const char *", plain:ptr()), #plain))
      local none, err = body:gunzip(10)
      assert.is_nil(none)
      assert.equals("body size limit exceeded", err)
      plain:free()
      assert.equals(0, plain:len())
      assert.has_error(function()
        plain:ptr()
      end)
      assert.equals(GZ_TEXT, httpc.gunzip(gz_body))
      assert.equals(GZ_TEXT, httpc.gunzip(body, #GZ_TEXT):string())
      assert.is_nil((httpc.gunzip("not gzip at all, really")))
      -- in steps: 8 bytes of output each, the same text in the end
      local g = assert(body:gunzip_stream(1e6))
      local steps, out = 0, false
      while out == false do
        out = g:step(8)
        steps = steps + 1
      end
      assert.equals(GZ_TEXT, out:string())
      assert.is_true(steps >= #GZ_TEXT / 8, tostring(steps))
      assert.has_error(function()
        g:step(8)
      end, "gunzip stream already finished")
      local lim = assert(body:gunzip_stream(10))
      local r = lim:step(8)
      assert.is_false(r)
      local lerr
      r, lerr = lim:step(8)
      assert.is_nil(r)
      assert.equals("body size limit exceeded", lerr)
      -- the stream keeps its body referenced, and a body freed under it fails the step
      local late = assert(body:gunzip_stream())
      body:free()
      assert.has_error(function()
        late:step(8)
      end, "gunzip stream: its http body was freed")
      late:free()
    end)
  end)

  describe("moonwatch.http_client", function()
    it("GETs and POSTs from a task", function()
      local resp, err = run(function()
        return http_client.request({ url = base .. "/hello" })
      end)
      assert.is_nil(err)
      assert.equals(200, resp.status)
      assert.equals("hello", resp.body)
      local body = string.rep("sample;", 100000)
      resp = assert(run(function()
        return http_client.request({ url = base .. "/echo", method = "POST", body = body,
          headers = { ["Content-Type"] = "application/x-protobuf", ["Content-Encoding"] = "snappy" } })
      end))
      assert.equals(200, resp.status)
      assert.equals(body, resp.body)
      assert.equals("application/x-protobuf", seen.headers["content-type"])
      assert.equals("snappy", seen.headers["content-encoding"])
    end)

    it("passes 404 and Retry-After through", function()
      local resp = assert(run(function()
        return http_client.request({ url = base .. "/nothing" })
      end))
      assert.equals(404, resp.status)
      resp = assert(run(function()
        return http_client.request({ url = base .. "/busy" })
      end))
      assert.equals(503, resp.status)
      assert.equals("120", resp.headers["retry-after"])
    end)

    it("follows redirects unless follow_redirects = false", function()
      local resp = assert(run(function()
        return http_client.request({ url = base .. "/redirect" })
      end))
      assert.equals(200, resp.status)
      assert.equals("hello", resp.body)
      assert.equals(base .. "/hello", resp.url)
      resp = assert(run(function()
        return http_client.request({ url = base .. "/redirect", follow_redirects = false })
      end))
      assert.equals(302, resp.status)
      assert.equals("/hello", resp.headers.location)
    end)

    it("sends basic auth, bearer tokens, authorization and http_headers", function()
      local dir = proc.tmpdir()
      proc.write(dir .. "/pw", "from-file\n")
      local cases = {
        { { basic_auth = { username = "alice", password = schema.secret("s3cret") } }, "Basic YWxpY2U6czNjcmV0" },
        { { basic_auth = { username = "alice", password_file = dir .. "/pw" } }, "Basic YWxpY2U6ZnJvbS1maWxl" },
        { { bearer_token = schema.secret("tok") }, "Bearer tok" },
        { { bearer_token_file = dir .. "/pw" }, "Bearer from-file" },
        { { authorization = { type = "Token", credentials = schema.secret("xyz") } }, "Token xyz" },
        { { authorization = { credentials_file = dir .. "/pw" } }, "Bearer from-file" },
      }
      for _, c in ipairs(cases) do
        local client = assert(http_client.new(c[1]))
        assert(run(function()
          return client:request({ url = base .. "/hello" })
        end))
        assert.equals(c[2], seen.headers.authorization)
      end
      -- a request's own Authorization (a push endpoint's headers) is sent instead of the
      -- configured one, never beside it, as Prometheus's round trippers (a bearer token was sent
      -- as a second header: the server saw "Custom c, Bearer tok")
      for _, c in ipairs(cases) do
        local client = assert(http_client.new(c[1]))
        for _, name in ipairs({ "Authorization", "authorization" }) do
          assert(run(function()
            return client:request({ url = base .. "/hello", headers = { [name] = "Custom c" } })
          end))
          assert.equals("Custom c", seen.headers.authorization)
        end
      end
      local client = assert(http_client.new({
        http_headers = { ["X-Scope-OrgID"] = { schema.secret("tenant-1") }, ["X-Plain"] = "p" },
      }))
      assert.equals("http client", tostring(client))
      assert(run(function()
        return client:request({ url = base .. "/hello", headers = { Accept = "text/plain" } })
      end))
      assert.equals("tenant-1", seen.headers["x-scope-orgid"])
      assert.equals("p", seen.headers["x-plain"])
      assert.equals("text/plain", seen.headers.accept)
      os.execute("rm -rf " .. proc.quote(dir))
    end)

    it("rejects conflicting settings", function()
      local bad = {
        { { bearer_token = "a", bearer_token_file = "/f" }, "bearer_token and bearer_token_file are mutually exclusive" },
        { { basic_auth = { password = "a", password_file = "/f" } }, "basic_auth: password and password_file" },
        { { basic_auth = { username = "u" }, bearer_token = "t" }, "at most one of" },
        { { authorization = { type = "Basic", credentials = "x" } }, "use \"basic_auth\" instead" },
        { { no_proxy = "localhost" }, "proxy_url must also be configured" },
        { { proxy_from_environment = true, proxy_url = "http://p:3128" }, "must not be configured" },
        { { proxy_connect_header = { ["X-A"] = { "b" } } }, "proxy_url or proxy_from_environment" },
        { { tls_config = { ca_file = "/a", ca_pem = "b" } }, "ca_pem and ca_file are mutually exclusive" },
        { { tls_config = { cert_file = "/a" } }, "certificate and key must be given together" },
        { { tls_config = { min_version = "TLS9" } }, "unknown min_version" },
        { { http_headers = { Authorization = "x" } }, "setting header \"Authorization\" is not allowed" },
        { { oauth2 = { client_id = "x" } }, "oauth2: token_url is required" },
      }
      for _, b in ipairs(bad) do
        local client, err = http_client.new(b[1])
        assert.is_nil(client)
        assert.is_truthy(err:find(b[2], 1, true), err)
      end
    end)

    it("reports timeouts, refused connections and the body size limit", function()
      local resp, err = run(function()
        return http_client.request({ url = base .. "/slow", timeout = "200ms" })
      end)
      assert.is_nil(resp)
      assert.matches("^context deadline exceeded", err)
      loop.run_for(1) -- the server's handler finishes
      local port = assert(http_server.listen("127.0.0.1:0"))
      local addr = port:addr()
      port:close()
      resp, err = run(function()
        return http_client.request({ url = "http://" .. addr .. "/metrics", timeout = 5 })
      end)
      assert.is_nil(resp)
      assert.matches("^connect: connection refused", err)
      resp, err = run(function()
        return http_client.request({ url = base .. "/big", max_body = 1000 })
      end)
      assert.is_nil(resp)
      assert.equals("body size limit exceeded", err)
    end)

    it("keeps the first max_body bytes of a longer body with truncate_body, and succeeds", function()
      local resp = assert(run(function()
        return http_client.request({ url = base .. "/big", max_body = 1000, truncate_body = true })
      end))
      assert.equals(200, resp.status)
      assert.equals(string.rep("x", 1000), resp.body)
      resp = assert(run(function()
        return http_client.request({ url = base .. "/hello", max_body = 1000, truncate_body = true })
      end))
      assert.equals("hello", resp.body)
    end)

    it("cancels the request when its task is cancelled", function()
      local task = scheduler.spawn(function()
        http_client.request({ url = base .. "/slow" })
        error("not reached")
      end)
      loop.run_for(0.1)
      assert.equals(1, httpc.pending())
      scheduler.cancel(task)
      assert.is_true(task.done)
      assert.is_true(task.ok)
      assert.equals(0, httpc.pending())
      loop.run_for(1.1)
    end)

    it("goes through proxy_url unless no_proxy matches, and reads the environment only when asked", function()
      pcall(ffi.cdef, "int setenv(const char *name, const char *value, int overwrite); int unsetenv(const char *name);")
      local proxy = assert(http_server.listen("127.0.0.1:0"))
      proxy:route("*", "http://*", function(_, rest)
        return 200, "via proxy: " .. rest
      end)
      local proxy_url = "http://" .. proxy:addr()
      local function get(cfg)
        cfg.url = cfg.url or "http://scrape.test/metrics"
        cfg.timeout = 5
        return run(function()
          return http_client.request(cfg)
        end)
      end
      local resp = assert(get({ proxy_url = proxy_url }))
      assert.equals("via proxy: scrape.test/metrics", resp.body)
      resp = assert(get({ url = base .. "/hello", proxy_url = proxy_url, no_proxy = "localhost,127.0.0.1" }))
      assert.equals("hello", resp.body)
      ffi.C.setenv("HTTP_PROXY", proxy_url, 1)
      local ok, env_resp = pcall(get, { proxy_from_environment = true })
      local _, no_env_err = pcall(function()
        return select(2, get({ url = "http://scrape.test/metrics" }))
      end)
      ffi.C.unsetenv("HTTP_PROXY")
      proxy:close()
      assert.is_true(ok)
      assert.equals("via proxy: scrape.test/metrics", env_resp.body)
      assert.matches("^no such host", no_env_err) -- not proxied: the environment is ignored
    end)

    it("errors outside a task", function()
      assert.has_error(function()
        http_client.perform({ url = base })
      end, "http_client: request called outside a task (use scheduler.spawn)")
    end)
  end)

  describe("oauth2", function()
    it("fetches a client credentials token once and sends it", function()
      token_requests = 0
      local client = assert(http_client.new({
        oauth2 = { client_id = "id 1", client_secret = schema.secret("s:cret"), token_url = base .. "/token",
          scopes = { "read", "write" }, endpoint_params = { audience = "mw" } },
      }))
      -- two concurrent requests share one token fetch
      local t1 = scheduler.spawn(function()
        assert(client:request({ url = base .. "/hello" }))
      end)
      local t2 = scheduler.spawn(function()
        assert(client:request({ url = base .. "/hello" }))
      end)
      loop.run_until(function()
        return t1.done and t2.done
      end)
      assert.is_true(t1.ok and t2.ok)
      assert.equals(1, token_requests)
      assert.equals("Bearer tok-1", seen.headers.authorization)
      assert(run(function()
        return client:request({ url = base .. "/hello" })
      end))
      assert.equals(1, token_requests)
      assert.equals("Bearer tok-1", seen.headers.authorization)
      client.oauth2:invalidate()
      assert(run(function()
        return client:request({ url = base .. "/hello" })
      end))
      assert.equals(2, token_requests)
      assert.equals("Bearer tok-2", seen.headers.authorization)
      -- the token replaces a request's own Authorization (Go's oauth2.Transport sets it), never
      -- beside it
      assert(run(function()
        return client:request({ url = base .. "/hello", headers = { authorization = "Custom c" } })
      end))
      assert.equals("Bearer tok-2", seen.headers.authorization)
    end)

    it("reports a refused token request", function()
      local client = assert(http_client.new({
        oauth2 = { client_id = "nope", client_secret = "x", token_url = base .. "/token" },
      }))
      local resp, err = run(function()
        return client:request({ url = base .. "/hello" })
      end)
      assert.is_nil(resp)
      assert.matches("^oauth2: cannot fetch token: HTTP 401", err)
    end)

    it("encodes forms", function()
      assert.equals("a=1&b=x%20y%2Bz", oauth2.form_encode({ b = "x y+z", a = "1" }))
    end)
  end)

  describe("TLS", function()
    local dir, pid, tls_base, ip_base

    setup(function()
      dir = proc.tmpdir()
      local q = proc.quote(dir)
      local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
      local out = sh(table.concat({
        "cd " .. q,
        "openssl req -x509 " .. ec .. " -keyout ca.key -out ca.pem -days 2 -subj /CN=moonwatch-test-ca"
          .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
        "openssl req " .. ec .. " -keyout srv.key -out srv.csr -subj /CN=localhost",
        "printf 'subjectAltName=DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > ext.cnf",
        "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2"
          .. " -extfile ext.cnf",
      }, " && "))
      assert(io.open(dir .. "/srv.pem"), "certificate generation failed: " .. out)
      -- bounded: the server dies after 120 s even if teardown never runs
      os.execute(string.format("cd %s && (timeout 120 openssl s_server -www -accept 0 -cert srv.pem"
        .. " -key srv.key > s_server.log 2>&1 < /dev/null & echo $! > s_server.pid)", q))
      local port
      for _ = 1, 200 do
        local f = io.open(dir .. "/s_server.log")
        port = f and f:read("*a"):match("ACCEPT [^\n]*:(%d+)")
        if f then
          f:close()
        end
        if port then
          break
        end
        os.execute("sleep 0.02")
      end
      assert(port, "openssl s_server did not start")
      local f = io.open(dir .. "/s_server.pid")
      pid = tonumber(f:read("*l"))
      f:close()
      tls_base = "https://localhost:" .. port .. "/"
      ip_base = "https://127.0.0.1:" .. port .. "/"
    end)

    teardown(function()
      if pid then
        os.execute("kill " .. pid .. " 2>/dev/null")
      end
      os.execute("rm -rf " .. proc.quote(dir))
    end)

    local function get(cfg, url)
      cfg.url = url or tls_base
      cfg.timeout = 5
      return run(function()
        return http_client.request(cfg)
      end)
    end

    it("verifies the server with ca_file or ca_pem", function()
      local resp, err = get({ tls_config = { ca_file = dir .. "/ca.pem" } })
      assert.is_nil(err)
      assert.equals(200, resp.status)
      local f = io.open(dir .. "/ca.pem")
      local pem = f:read("*a")
      f:close()
      resp = assert(get({ tls_config = { ca_pem = pem, min_version = "TLS13" } }))
      assert.equals(200, resp.status)
    end)

    it("fails verification without the CA, naming the reason", function()
      local resp, err = get({})
      assert.is_nil(resp)
      assert.matches("^tls: failed to verify certificate %(.*certificate", err)
    end)

    it("skips verification with insecure_skip_verify", function()
      local resp = assert(get({ tls_config = { insecure_skip_verify = true } }))
      assert.equals(200, resp.status)
    end)

    it("verifies against server_name instead of the URL's host", function()
      local resp, err = get({ tls_config = { ca_file = dir .. "/ca.pem" } }, ip_base)
      assert.is_nil(resp)
      assert.matches("^tls: failed to verify certificate", err)
      resp, err = get({ tls_config = { ca_file = dir .. "/ca.pem", server_name = "localhost" } }, ip_base)
      assert.is_nil(err)
      assert.equals(200, resp.status)
    end)
  end)
end)
