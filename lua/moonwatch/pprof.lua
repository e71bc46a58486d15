--- moonwatch.pprof: /debug/pprof/ as Go's net/http/pprof serves it, for the moonwatch process:
---   /debug/pprof/                 index of the profiles
---   /debug/pprof/profile?seconds=N  CPU: C stacks (SIGPROF + libunwind) and Lua stacks
---                                 (jit.profile) merged into one profile; 30 s by default
---   /debug/pprof/heap, /allocs    the Lua heap and the C heap (glibc mallinfo2 totals)
---   /debug/pprof/goroutine        the scheduler's Lua tasks and where each waits
---   /debug/pprof/block, /mutex    empty (one Lua thread takes no lock), as Go's by default
---   /debug/pprof/cmdline, /symbol
--- Profiles are gzipped profile.proto (application/octet-stream); ?debug=1 gives text where Go
--- does. Nothing is sampled unless a CPU profile is being taken; one at a time (a second gets
--- 500 "Could not enable CPU profiling: cpu profiling already in use", as Go answers).
local native = require("moonwatch.native.pprof")
local monotonic = require("moonwatch.ffi").monotonic
local scheduler = require("moonwatch.scheduler")
local redact = require("moonwatch.redact")

local M = {}

--- The sampling rate of CPU profiles (Go's default).
M.HZ = 100
--- The longest CPU profile (seconds): the HTTP server answers every request within 60 s.
M.MAX_SECONDS = 50
M.DEFAULT_SECONDS = 30

local getinfo = debug.getinfo

-- Defined names of Lua functions, from their source line: [source:linedefined] = name|false.
local defined = {}
local sources = {} -- [path] = { lines } | false (unreadable or too big)

local function source_line(path, n)
  local lines = sources[path]
  if lines == nil then
    lines = false
    local f = io.open(path, "r")
    if f then
      local text = f:read(4 * 1024 * 1024 + 1)
      f:close()
      if text and #text <= 4 * 1024 * 1024 then
        lines = {}
        for l in (text .. "\n"):gmatch("([^\n]*)\n") do
          lines[#lines + 1] = l
        end
      end
    end
    sources[path] = lines
  end
  return lines and lines[n]
end

-- The name a Lua function was defined with (`local function f(`, `function m.f(`, `f = function(`),
-- else the name it was called by, else "anonymous".
local function func_name(info)
  if info.what == "main" then
    return "main chunk"
  end
  if info.what == "C" then
    return info.name or "?"
  end
  local key = info.source .. ":" .. info.linedefined
  local name = defined[key]
  if name == nil then
    name = false
    if info.source:sub(1, 1) == "@" then
      local line = source_line(info.source:sub(2), info.linedefined)
      if line then
        name = line:match("function%s+([%w_%.:]+)%s*%(") or line:match("([%w_%.]+)%s*=%s*function%s*%(")
          or line:match("%[%s*[\"']([^\"']+)[\"']%s*%]%s*=%s*function%s*%(") or false
      end
    end
    defined[key] = name
  end
  return name or info.name or "anonymous"
end
M.func_name = func_name

local VMSTATE = { G = "[LuaJIT GC]", J = "[LuaJIT compiler]" }

-- "name\tfile\tstart_line\t" of Lua functions: [source][linedefined] (the profiler's callback
-- runs at every tick: it builds each frame's text once).
local prefixes = setmetatable({}, { __mode = "k" })

local function frame_prefix(thread, level, info)
  if info.what == "C" then
    local n = getinfo(thread, level, "n")
    return (n and n.name or "?") .. "\t[C]\t0\t"
  end
  local src, ld = info.source, info.linedefined
  local bysrc = prefixes[src]
  if not bysrc then
    bysrc = {}
    prefixes[src] = bysrc
  end
  local pre = bysrc[ld]
  if not pre then
    if info.what ~= "main" and src:sub(1, 1) == "@" then
      info.name = (getinfo(thread, level, "n") or {}).name
    end
    local file = src:sub(1, 1) == "@" and src:sub(2) or info.short_src
    pre = func_name(info) .. "\t" .. file .. "\t" .. math.max(ld, 0) .. "\t"
    bysrc[ld] = pre
  end
  return pre
end

-- The stack of thread as mw_ffi_pprof_cpu_lua takes it (leaf first).
local function lua_frames(thread, vmstate)
  local parts, n = {}, 0
  if VMSTATE[vmstate] then
    parts[1], n = VMSTATE[vmstate] .. "\t\t0\t0\n", 1
  end
  for level = 0, 63 do
    local info = getinfo(thread, level, "Sl")
    if not info then
      break
    end
    parts[n + 1] = frame_prefix(thread, level, info)
    parts[n + 2] = info.currentline > 0 and info.currentline or 0
    parts[n + 3] = "\n"
    n = n + 3
  end
  return table.concat(parts)
end

local function cpu_busy_error(err)
  return "Could not enable CPU profiling: " .. err
end

local cpu_state -- the profile being taken: { hz, started, t0 }

--- Starts a CPU profile at hz samples a second (M.HZ): jit.profile for the Lua stacks, the
--- SIGPROF sampler for the C stacks. true, or nil, err ("cpu profiling already in use").
---@param hz integer|nil
---@param max_samples integer|nil the most ticks kept (0: no bound)
---@return true|nil ok, string|nil err
function M.cpu_begin(hz, max_samples)
  hz = hz or M.HZ
  local ok, err = native.cpu_prepare()
  if not ok then
    return nil, err
  end
  local jp = require("jit.profile")
  local st = { hz = hz, callback_s = 0 }
  -- (an error raised in jit.profile's callback ends the process: LuaJIT exits on it)
  local function record(thread, ticks, vmstate)
    native.cpu_lua(lua_frames(thread, vmstate), ticks)
  end
  jp.start("i" .. math.max(1, math.floor(1000 / hz)), function(thread, ticks, vmstate)
    local t0 = monotonic()
    pcall(record, thread, ticks, vmstate)
    st.callback_s = st.callback_s + monotonic() - t0
  end)
  ok, err = native.cpu_start(hz, max_samples or 0)
  if not ok then
    jp.stop()
    return nil, err
  end
  st.started, st.wall0 = os.time(), monotonic()
  cpu_state = st
  return true
end

--- Moves the C samples out of the signal handler's ring (call at least every few seconds).
M.cpu_drain = native.cpu_drain

--- Stops the CPU profile M.cpu_begin started; returns it (gzipped unless raw).
---@param raw boolean|nil
---@return string|nil body, string|nil err
function M.cpu_end(raw)
  native.cpu_stop()
  require("jit.profile").stop()
  local st = cpu_state
  cpu_state = nil
  local handler_s, ticks = native.cpu_cost()
  local wall = monotonic() - st.wall0
  local b = native.builder()
  b:meta("cpu", "nanoseconds", math.floor(1e9 / st.hz), st.started, wall)
  b:comment(string.format("sampler cost: %.1f ms in the SIGPROF handler (%d ticks), %.1f ms building Lua stacks, "
    .. "over %.1f s: %.2f%% of one core", handler_s * 1000, ticks, st.callback_s * 1000, wall,
    (handler_s + st.callback_s) / math.max(wall, 1e-9) * 100))
  local lost = native.cpu_build(b)
  if lost > 0 then
    b:comment(string.format("%d samples lost (buffer full)", lost))
  end
  return b:finish(raw)
end

--- Takes a CPU profile of `seconds` (in a scheduler task: it sleeps meanwhile). Returns the
--- gzipped profile, or nil, err (a second profile while one runs: "cpu profiling already in
--- use").
---@param seconds number
---@param opts table|nil { hz = 100, raw = false (not gzipped) }
---@return string|nil body, string|nil err
function M.cpu(seconds, opts)
  opts = opts or {}
  local hz = opts.hz or M.HZ
  local ok, err = M.cpu_begin(hz, math.floor(seconds * hz * 4) + 1000)
  if not ok then
    return nil, err
  end
  local t0 = scheduler.now()
  local sok, serr = pcall(function()
    local left = seconds
    while left > 0 do
      scheduler.sleep(math.min(1, left))
      native.cpu_drain()
      left = seconds - (scheduler.now() - t0)
    end
  end)
  local body, berr = M.cpu_end(opts.raw)
  if not sok then
    error(serr, 0)
  end
  return body, berr
end

--- The heap profile (Go's sample types: alloc_objects, alloc_space, inuse_objects,
--- inuse_space): the Lua heap (collectgarbage("count")) and the C heap (glibc mallinfo2 of
--- the main arena: in-use chunks, mmapped chunks). Exact totals, not samples; object counts
--- are not known (0), and alloc_* equals inuse_* (neither LuaJIT nor glibc counts allocations
--- made over time).
---@param opts table|nil { raw = false, default = "inuse_space" | "alloc_space" }
---@return string|nil body, string|nil err
function M.heap(opts)
  opts = opts or {}
  local b = native.builder()
  b:sample_type("alloc_objects", "count")
  b:sample_type("alloc_space", "bytes")
  b:sample_type("inuse_objects", "count")
  b:sample_type("inuse_space", "bytes")
  b:meta("space", "bytes", 1, os.time(), 0, opts.default)
  local lua_bytes = math.floor(collectgarbage("count") * 1024)
  local inuse, mmapped = native.mallinfo()
  local function add(name, bytes, kind)
    b:sample({ b:func_location(name, "", 0, 0) }, { 0, bytes, 0, bytes }, { heap = kind })
  end
  add("[Lua heap]", lua_bytes, "lua")
  if inuse + mmapped > 0 then
    add("[C heap: malloc chunks]", inuse, "c")
    add("[C heap: mmapped chunks]", mmapped, "c")
    b:comment("Lua heap: collectgarbage(\"count\"); C heap: glibc mallinfo2 (main arena)")
  else -- another allocator (a sanitizer's, an LD_PRELOADed one) serves malloc
    b:comment("Lua heap: collectgarbage(\"count\"); C heap: not measured (malloc is not glibc's here: "
      .. "mallinfo2 counts nothing)")
  end
  return b:finish(opts.raw)
end

-- The wait of a task: "sleep", "wait" (suspended on an event) or "running".
local function task_state(t)
  if t.timer then
    return "sleep"
  elseif t.suspended then
    return "wait"
  end
  return "running"
end

-- The frames of a task's coroutine (leaf first): { name, file, start, line }.
local function task_frames(t)
  local frames = {}
  for level = 0, 63 do
    local info = getinfo(t.co, level, "Sln")
    if not info then
      break
    end
    local file = info.source:sub(1, 1) == "@" and info.source:sub(2) or info.short_src
    frames[#frames + 1] = { func_name(info), file, math.max(info.linedefined, 0), math.max(info.currentline, 0) }
  end
  return frames
end

-- What a suspended task waits in: its innermost frame outside the scheduler and the component
-- API ("Instance:run_target stdlib/prometheus/scrape.lua:453"), "" for a running one.
local PLUMBING = { "moonwatch/scheduler%.lua$", "moonwatch/component%.lua$", "^%[C%]$" }
local function waiting_in(t, frames)
  if not t.suspended then
    return ""
  end
  for _, f in ipairs(frames) do
    local plumbing = false
    for _, p in ipairs(PLUMBING) do
      plumbing = plumbing or f[2]:find(p) ~= nil
    end
    if not plumbing then
      return string.format("%s %s:%d", f[1], f[2], f[4])
    end
  end
  return ""
end

local function sorted_tasks()
  local list = scheduler.list()
  table.sort(list, function(a, b)
    local ca, cb = a.component_id or "", b.component_id or ""
    if ca ~= cb then
      return ca < cb
    end
    return a.name < b.name
  end)
  return list
end

--- The Lua tasks in place of goroutines: one sample per task (goroutine/count) with its stack
--- and labels component_id, task (its name, passwords of URLs in it masked), state (sleep,
--- wait, running), waiting_in (the innermost frame of a suspended task outside the scheduler:
--- what it waits on). debug = 1 or 2: text.
---@param opts table|nil { raw = false, debug = 0 }
---@return string|nil body, string|nil err
function M.goroutine(opts)
  opts = opts or {}
  local list = sorted_tasks()
  if (opts.debug or 0) > 0 then
    local out = { string.format("task profile: total %d\n", #list) }
    for i, t in ipairs(list) do
      local frames = task_frames(t)
      local w = waiting_in(t, frames)
      out[#out + 1] = string.format("\ntask %d [%s%s]: %s%s\n", i, task_state(t), w ~= "" and (", in " .. w) or "",
        redact.text(t.name), t.component_id and (" (component " .. t.component_id .. ")") or "")
      for _, f in ipairs(frames) do
        out[#out + 1] = string.format("%s()\n\t%s:%d\n", f[1], f[2], f[4])
      end
    end
    return table.concat(out)
  end
  local b = native.builder()
  b:sample_type("goroutine", "count")
  b:meta("goroutine", "count", 1, os.time(), 0)
  for _, t in ipairs(list) do
    local locs, frames = {}, task_frames(t)
    for _, f in ipairs(frames) do
      locs[#locs + 1] = b:func_location(f[1], f[2], f[3], f[4])
    end
    b:sample(locs, { 1 }, { component_id = t.component_id or "", task = redact.text(t.name), state = task_state(t),
      waiting_in = waiting_in(t, frames) })
  end
  return b:finish(opts.raw)
end

--- Go's block and mutex profiles (contentions/count, delay/nanoseconds), with no sample: the
--- one Lua thread never blocks on a lock or a channel (what waits is a task: see goroutine).
function M.contention(opts)
  opts = opts or {}
  local b = native.builder()
  b:sample_type("contentions", "count")
  b:sample_type("delay", "nanoseconds")
  b:meta("contentions", "count", 1, os.time(), 0)
  return b:finish(opts.raw)
end

--- The command line, arguments separated by NUL bytes (as Go's os.Args joined).
function M.cmdline()
  local f = io.open("/proc/self/cmdline", "rb")
  local s = f and f:read("*a") or ""
  if f then
    f:close()
  end
  return (s:gsub("%z$", ""))
end

--- Go's /debug/pprof/symbol: "num_symbols: 1" for a GET without addresses; otherwise one line
--- "0xADDR name" per address of the "+"-separated list that names a function.
function M.symbol(addrs)
  if not addrs or addrs == "" then
    return "num_symbols: 1\n"
  end
  local out = {}
  for word in addrs:gmatch("[^+%s]+") do
    local n = tonumber((word:gsub("^0[xX]", "")), 16)
    local name = n and native.symbol(n)
    if name then
      out[#out + 1] = string.format("%#x %s\n", n, name)
    end
  end
  return table.concat(out)
end

local PROFILES = {
  { "allocs", "A sampling of all past memory allocations: here the Lua heap and the C heap (glibc mallinfo2) now" },
  { "block", "Stack traces that led to blocking on synchronization primitives: none (one Lua thread; "
    .. "tasks wait in goroutine)" },
  { "cmdline", "The command line invocation of the current program" },
  { "goroutine", "The Lua tasks (coroutines) of every component and what each waits on. "
    .. "Use debug=1 or debug=2 as a query parameter to see them as text." },
  { "mutex", "Stack traces of holders of contended mutexes: none (one Lua thread)" },
  { "heap", "The Lua heap and the C heap (glibc mallinfo2). You can specify the gc GET parameter to run "
    .. "a full garbage collection before taking the heap sample." },
  { "profile", "CPU profile: C and Lua stacks. You can specify the duration in the seconds GET parameter "
    .. "(at most " .. M.MAX_SECONDS .. "). After you get the profile file, use the go tool pprof command "
    .. "to investigate the profile." },
  { "symbol", "Maps addresses of the moonwatch process to function names" },
}

local function index_html()
  local rows = {}
  for _, p in ipairs(PROFILES) do
    rows[#rows + 1] = string.format("<li><div class=profile-name><a href=\"%s?debug=1\">%s</a>:</div>"
      .. "<div class=profile-description>%s</div></li>", p[1], p[1], p[2])
  end
  return "<html>\n<head>\n<title>/debug/pprof/</title>\n</head>\n<body>\n/debug/pprof/\n<br>\n"
    .. "<p>Set debug=1 as a query parameter to export in legacy text format</p>\n<br>\n"
    .. "Types of profiles available:\n<ul>\n" .. table.concat(rows, "\n") .. "\n</ul>\n"
    .. "<a href=\"goroutine?debug=2\">full goroutine stack dump</a>\n</body>\n</html>\n"
end

-- Go's serveError: text, X-Go-Pprof: 1.
local function serve_error(status, msg)
  return status, msg .. "\n", { ["Content-Type"] = "text/plain; charset=utf-8", ["X-Go-Pprof"] = "1",
    ["X-Content-Type-Options"] = "nosniff" }
end

local function proto(name, body, err)
  if not body then
    return serve_error(500, err)
  end
  return 200, body, { ["Content-Type"] = "application/octet-stream",
    ["Content-Disposition"] = string.format('attachment; filename="%s"', name),
    ["X-Content-Type-Options"] = "nosniff" }
end

local function text(body)
  return 200, body, { ["Content-Type"] = "text/plain; charset=utf-8", ["X-Content-Type-Options"] = "nosniff" }
end

local function debug_level(req)
  return math.floor(tonumber(req.query and req.query.debug) or 0)
end

--- Adds the /debug/pprof routes with add(method, pattern, label, fn) (http_api's counted add).
function M.routes(add)
  add("GET", "/debug/pprof/", "/debug/pprof/", function()
    return 200, index_html(), { ["Content-Type"] = "text/html; charset=utf-8" }
  end)
  add("GET", "/debug/pprof/profile", "/debug/pprof/profile", function(req)
    local seconds = tonumber(req.query and req.query.seconds)
    if not seconds or seconds <= 0 or seconds ~= math.floor(seconds) then
      seconds = M.DEFAULT_SECONDS -- as Go: a missing or bad value means 30
    end
    if seconds > M.MAX_SECONDS then
      return serve_error(400, string.format("profile duration exceeds server's WriteTimeout "
        .. "(seconds: at most %d)", M.MAX_SECONDS))
    end
    local body, err = M.cpu(seconds)
    if not body then
      return serve_error(500, cpu_busy_error(err))
    end
    return proto("profile", body)
  end)
  local function heap(name, default)
    return function(req)
      if req.query and req.query.seconds then
        return serve_error(400, "seconds: delta " .. name .. " profiles are not supported")
      end
      if req.query and (tonumber(req.query.gc) or 0) > 0 then
        collectgarbage("collect")
      end
      if debug_level(req) > 0 then
        local lua_bytes = math.floor(collectgarbage("count") * 1024)
        local inuse, mmapped, free = native.mallinfo()
        return text(string.format("heap profile: Lua heap %d bytes; C heap %d bytes in malloc chunks, "
          .. "%d in mmapped chunks, %d free (glibc mallinfo2, main arena)\n", lua_bytes, inuse, mmapped, free))
      end
      return proto(name, M.heap({ default = default }))
    end
  end
  add("GET", "/debug/pprof/heap", "/debug/pprof/heap", heap("heap", "inuse_space"))
  add("GET", "/debug/pprof/allocs", "/debug/pprof/allocs", heap("allocs", "alloc_space"))
  add("GET", "/debug/pprof/goroutine", "/debug/pprof/goroutine", function(req)
    local d = debug_level(req)
    if d > 0 then
      return text(M.goroutine({ debug = d }))
    end
    return proto("goroutine", M.goroutine())
  end)
  for _, name in ipairs({ "block", "mutex" }) do
    add("GET", "/debug/pprof/" .. name, "/debug/pprof/" .. name, function(req)
      if debug_level(req) > 0 then
        return text("--- contention:\ncycles/second=1000000000\n")
      end
      return proto(name, M.contention())
    end)
  end
  add("GET", "/debug/pprof/cmdline", "/debug/pprof/cmdline", function()
    return text(M.cmdline())
  end)
  local function symbol(req)
    local addrs = req.method == "POST" and req.body
    if not addrs then -- GET /debug/pprof/symbol?0x1+0x2: the query's keys
      local keys = {}
      for k in pairs(req.query or {}) do
        keys[#keys + 1] = k
      end
      addrs = table.concat(keys, "+")
    end
    return text(M.symbol(addrs))
  end
  add("GET", "/debug/pprof/symbol", "/debug/pprof/symbol", symbol)
  add("POST", "/debug/pprof/symbol", "/debug/pprof/symbol", symbol)
  add("GET", "^/debug/pprof/([^/]+)$", "/debug/pprof/{name}", function()
    return serve_error(404, "Unknown profile")
  end)
end

return M
