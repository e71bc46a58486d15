-- moonwatch.redact: URL passwords, credentials and configured secrets masked in what
-- moonwatch shows or writes; short, clean excerpts of what a server answered.
local redact = require("moonwatch.redact")
local schema = require("moonwatch.schema")
local log = require("moonwatch.log")

describe("redact", function()
  it("shows a URL's password as xxxxx, as Prometheus does, and leaves the rest alone", function()
    assert.equals("http://user:xxxxx@host:9090/api/v1/write",
      redact.url("http://user:pass@host:9090/api/v1/write"))
    assert.equals("post to https://u:xxxxx@h/p failed; http://v:xxxxx@k too",
      redact.url("post to https://u:p%40ss:w@h/p failed; http://v:q@k too"))
    for _, s in ipairs({ "http://host:9090/path@x", "https://token@host/", "user:pass@host", "no url",
      "http://u:xxxxx@h/" }) do
      assert.equals(s, redact.url(s))
    end
  end)

  it("masks credentials that look like credentials, however they are quoted", function()
    local cases = {
      { "Authorization: Basic dXNlcjpwYXNz\r\nAccept: */*", "Authorization: Basic xxxxx\r\nAccept: */*" },
      { '{"Authorization": ["Bearer abc.def"], "X": ["y"]}', '{"Authorization": ["Bearer xxxxx"], "X": ["y"]}' },
      { "map[Authorization:[Basic dXNlcjpwYXNz] Accept:[*/*]]", "map[Authorization:[Basic xxxxx] Accept:[*/*]]" },
      { "proxy-authorization = 'tok3n'", "proxy-authorization = 'xxxxx'" },
      { "sent Basic dXNlcjpwYXNz to it", "sent Basic xxxxx to it" },
      { "sent bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "sent bearer xxxxx" },
      -- ordinary words are not credentials
      { "basic authentication failed", "basic authentication failed" },
      { "Bearer tokens expire", "Bearer tokens expire" },
      { "basic_auth: password and password_file are mutually exclusive",
        "basic_auth: password and password_file are mutually exclusive" },
    }
    for _, c in ipairs(cases) do
      assert.equals(c[2], redact.text(c[1]))
      assert.equals(c[2], redact.text(c[2])) -- masking twice changes nothing more
    end
  end)

  it("masks every secret argument's value while the secret lives, and forgets it after", function()
    local s = schema.secret("hunter2-is-my-password")
    assert.equals("error: xxxxx rejected (xxxxx)", redact.text("error: hunter2-is-my-password rejected (hunter2-is-my-password)"))
    assert.equals("(secret)", tostring(s))
    s = nil -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    assert.equals("hunter2-is-my-password", redact.text("hunter2-is-my-password"))
    -- too short to look for: it would mask ordinary words
    local short = schema.secret("abc") -- luacheck: ignore 211 311
    assert.equals("abc", redact.text("abc"))
  end)

  it("masks the longest secret first, and secrets that hold pattern characters", function()
    local owner = {}
    redact.register(owner, "pa%ss.wo(rd)")
    redact.register(owner, "pa%ss.wo(rd)-and-more")
    assert.equals("a xxxxx b xxxxx", redact.text("a pa%ss.wo(rd)-and-more b pa%ss.wo(rd)"))
  end)

  it("registers a URL's password, as written and decoded, and the basic credentials made of it", function()
    local owner = {}
    redact.register_url(owner, "http://us%20er:p%40ss-word@host/")
    local registered = {}
    for _, v in ipairs(redact.registered()) do
      registered[v] = true
    end
    assert.is_true(registered["p%40ss-word"])
    assert.is_true(registered["p@ss-word"])
    assert.is_true(registered[redact.base64("us er:p@ss-word")])
    redact.register_basic(owner, "user", "pass-word")
    assert.equals("Authorization: xxxxx", redact.text("Authorization: " .. redact.base64("user:pass-word")))
    assert.equals("echo: xxxxx", redact.text("echo: " .. redact.base64("user:pass-word")))
  end)

  it("encodes base64 as the standard does", function()
    assert.equals("", redact.base64(""))
    assert.equals("Zg==", redact.base64("f"))
    assert.equals("Zm8=", redact.base64("fo"))
    assert.equals("Zm9v", redact.base64("foo"))
    assert.equals("Zm9vYmFy", redact.base64("foobar"))
    assert.equals("dXNlcjpwYXNz", redact.base64("user:pass"))
    assert.equals("/+/+", redact.base64("\255\239\254"))
  end)

  it("makes a short, clean excerpt of a server's answer", function()
    local owner = {}
    redact.register(owner, "x-api-key-value-123")
    local body = "bad request; you sent:\r\nAuthorization: Basic dXNlcjpwYXNz\r\nX-Api-Key: x-api-key-value-123\r\n"
      .. "\27[31mred\27[0m\0nul\7" .. string.rep("filler ", 5000)
    local e = redact.excerpt(body)
    assert.is_true(#e <= redact.EXCERPT_MAX + 3)
    assert.matches("%.%.%.$", e)
    assert.is_nil(e:find("%c"))
    assert.matches("^bad request; you sent: Authorization: Basic xxxxx X%-Api%-Key: xxxxx %[31mred %[0m nul filler", e)
    assert.equals("short", redact.excerpt("short"))
    assert.equals("", redact.excerpt(nil))
    assert.equals("a b", redact.excerpt("a\r\n\t\0b"))
    -- never cut inside a UTF-8 character
    local u = redact.excerpt(string.rep("é", 200), 11)
    assert.equals(string.rep("é", 5) .. "...", u)
  end)

  it("shows no part of a secret that the excerpt's window cuts", function()
    local owner = {}
    local secret = "straddling-secret-0123456789"
    redact.register(owner, secret)
    -- control characters collapse, so what is left of the window is short: the secret starts in it
    local max = 64
    local junk = string.rep("\1", max * 16 - 10)
    local e = redact.excerpt(junk .. secret .. " tail", max)
    assert.is_nil(e:find("straddl", 1, true))
  end)

  it("log lines carry no URL password, credential or secret", function()
    local owner = {}
    redact.register(owner, "logged-secret-value")
    local buf = {}
    local out = { write = function(_, ...)
      for _, s in ipairs({ ... }) do
        buf[#buf + 1] = s
      end
    end, flush = function() end }
    log.configure({ out = out, format = "logfmt" })
    log.error("failed http://u:pw-in-url@h/ with logged-secret-value", { err = "Authorization: Bearer abcdefgh123",
      n = 3 })
    log.configure({ out = io.stderr })
    local line = table.concat(buf)
    assert.is_nil(line:find("pw-in-url", 1, true))
    assert.is_nil(line:find("logged-secret-value", 1, true))
    assert.is_nil(line:find("abcdefgh123", 1, true))
    assert.matches("http://u:xxxxx@h/", line, 1, true)
    assert.matches("n=3", line, 1, true)
  end)
end)
