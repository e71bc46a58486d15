--- helpers.chromium: headless Chromium driven through the DevTools protocol for end-to-end specs.
-- Chromium is started with --remote-debugging-pipe: it reads commands from fd 3 and writes
-- answers and events to fd 4, each a JSON message ended by a NUL byte. Two FIFOs carry
-- them, so no WebSocket client is needed. One page is opened and attached (flat session);
-- specs navigate it, evaluate JavaScript in it (promises awaited) and wait for conditions.
--
--   local chromium = require("helpers.chromium")
--   local b = chromium.start()
--   b:navigate("http://127.0.0.1:12345/")
--   b:wait("document.querySelectorAll('.node').length === 3")
--   local n = b:eval("document.title")
--   b:close()
local cjson = require("cjson")
local proc = require("helpers.proc")

local M = {}

local Browser = {}
Browser.__index = Browser

local function fail(msg)
  error(msg, 3)
end

-- Sends a command and reads messages until its answer; events are kept in self.events.
function Browser:send(method, params, session)
  self.seq = self.seq + 1
  local id = self.seq
  -- (Debian's lua-cjson encodes an empty table as {}, as the protocol wants)
  local msg = { id = id, method = method, params = params or {}, sessionId = session }
  self.cmd:write(cjson.encode(msg), "\0")
  self.cmd:flush()
  while true do
    local parts = {}
    while true do
      local c = self.out:read(1)
      if c == nil then
        fail("chromium went away while waiting for " .. method)
      end
      if c == "\0" then
        break
      end
      parts[#parts + 1] = c
    end
    local m = cjson.decode(table.concat(parts))
    if m.id == id then
      if m.error then
        fail(method .. ": " .. tostring(m.error.message))
      end
      return m.result
    end
  end
end

--- Evaluates a JavaScript expression in the page (a promise is awaited) and returns its
--- value (JSON-able values only). A thrown exception fails the spec.
---@param expr string
---@return any
function Browser:eval(expr)
  local r = self:send("Runtime.evaluate", { expression = expr, awaitPromise = true, returnByValue = true },
    self.session)
  if r.exceptionDetails then
    local ex = r.exceptionDetails.exception
    fail("javascript: " .. tostring(ex and ex.description or r.exceptionDetails.text))
  end
  local v = r.result.value
  if v == cjson.null then
    return nil
  end
  return v
end

--- Waits until the JavaScript expression is truthy (checked every 100 ms); fails the spec
--- after timeout seconds (default 15), naming what was awaited and, if given, what
--- describe (another expression) says about the page then.
---@param expr string
---@param timeout number|nil
---@param describe string|nil
function Browser:wait(expr, timeout, describe)
  local js = string.format([[new Promise((resolve) => {
    const end = Date.now() + %d;
    const check = () => {
      let ok = false;
      try { ok = !!(%s); } catch (e) { ok = false; }
      if (ok || Date.now() > end) resolve(ok); else setTimeout(check, 100);
    };
    check();
  })]], math.floor((timeout or 15) * 1000), expr)
  if not self:eval(js) then
    local seen = describe and self:eval(describe)
    fail("timed out waiting for: " .. expr .. (seen and ("\n  page: " .. cjson.encode(seen)) or ""))
  end
end

--- Loads url in the page and waits until its load event.
function Browser:navigate(url)
  self:send("Page.navigate", { url = url }, self.session)
  self:wait("document.readyState === 'complete' && location.href === " .. cjson.encode(url))
end

local B64 = {}
for i = 1, 64 do
  B64[("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"):byte(i)] = i - 1
end

--- Decodes base64 text (as the protocol sends binary data).
---@param s string
---@return string
function M.base64_decode(s)
  local out, bits, n = {}, 0, 0
  for i = 1, #s do
    local v = B64[s:byte(i)]
    if v then
      bits, n = bits * 64 + v, n + 6
      if n >= 8 then
        n = n - 8
        local byte = math.floor(bits / 2 ^ n)
        out[#out + 1] = string.char(byte)
        bits = bits - byte * 2 ^ n
      end
    end
  end
  return table.concat(out)
end

--- Saves a screenshot of the page (PNG) to path.
function Browser:screenshot(path)
  local r = self:send("Page.captureScreenshot", { format = "png" }, self.session)
  local f = assert(io.open(path, "wb"))
  f:write(M.base64_decode(r.data))
  f:close()
end

local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == 0
end

local function wait_gone(pid, seconds)
  for _ = 1, seconds * 10 do
    if not alive(pid) then
      return true
    end
    os.execute("sleep 0.1")
  end
  return false
end

--- Closes the browser and waits for it: asked to close, then terminated after 5 s.
function Browser:close()
  if self.closed then
    return
  end
  self.closed = true
  pcall(self.send, self, "Browser.close")
  pcall(self.cmd.close, self.cmd)
  pcall(self.out.close, self.out)
  -- self.pid is timeout(1)'s, which passes TERM on to Chromium and KILLs it 5 s later
  if not wait_gone(self.pid, 5) then
    os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
    if not wait_gone(self.pid, 10) then
      os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
    end
  end
  os.execute("rm -rf " .. proc.quote(self.dir))
end

--- Starts headless Chromium with one page; returns the browser (close it in teardown).
---@param opts table|nil { width = 1280, height = 800, lifetime = seconds (240) }
function M.start(opts)
  opts = opts or {}
  local dir = proc.tmpdir()
  local cmdfifo, outfifo = dir .. "/cmd", dir .. "/out"
  assert(os.execute("mkfifo " .. proc.quote(cmdfifo) .. " " .. proc.quote(outfifo)) == 0, "mkfifo failed")
  -- under timeout(1): a spec that dies without closing it leaves no browser behind for long
  local line = string.format("timeout -k 5 %d chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
    .. "--disable-background-networking --disable-component-update --disable-sync --hide-scrollbars "
    .. "--user-data-dir=%s --window-size=%d,%d --remote-debugging-pipe about:blank "
    .. "3<%s 4>%s 2>/dev/null >/dev/null </dev/null & echo $!",
    opts.lifetime or 240, proc.quote(dir .. "/profile"), opts.width or 1280, opts.height or 800,
    proc.quote(cmdfifo), proc.quote(outfifo))
  local p = io.popen(line)
  -- the shell opens fd 3 (read end of cmd) before fd 4 (write end of out): open in the same order
  local cmd = assert(io.open(cmdfifo, "w"))
  local out = assert(io.open(outfifo, "r"))
  local pid = tonumber(p:read("*l"))
  p:close()
  local self = setmetatable({ dir = dir, pid = pid, cmd = cmd, out = out, seq = 0 }, Browser)
  local ok, err = pcall(function()
    local t = self:send("Target.createTarget", { url = "about:blank" })
    local a = self:send("Target.attachToTarget", { targetId = t.targetId, flatten = true })
    self.session = a.sessionId
    self:send("Page.enable", nil, self.session)
    self:send("Runtime.enable", nil, self.session)
  end)
  if not ok then
    self:close()
    error(err, 2)
  end
  return self
end

return M
