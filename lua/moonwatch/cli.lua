--- moonwatch.cli: the command line (run, check, version, lua, help).
local M = {}

local USAGE = [[
Usage: moonwatch <command> [flags] [PIPELINE.lua|CONFIG.alloy]

Commands:
  run PIPELINE.lua     run a pipeline until SIGINT/SIGTERM (SIGHUP or POST /-/reload reloads it)
  check PIPELINE.lua   load and validate a pipeline, run nothing; exit 1 with every problem found
                       (a file named *.alloy is read as an Alloy configuration file)
  convert CONFIG.alloy print the Lua pipeline equivalent to an Alloy configuration file
  version              print the version and build details
  doc [COMPONENT]      list the components, or print one's reference (arguments, exports)
  lua SCRIPT [ARGS]    run a Lua script inside the moonwatch VM (tests, tools)
  help                 print this help

Flags (run and check):
  --server.http.listen-addr=ADDR   address of the HTTP server (default 127.0.0.1:12345)
  --server.http.read-header-timeout=DURATION
                                   how long a client may take to send a request's
                                   head, and again its body (default 10s)
  --server.http.max-connections=N  open HTTP connections at most (default 4096)
  --server.http.max-connections-per-ip=N
                                   open HTTP connections per client address at most
                                   (default 64; 0: no limit)
  --server.http.allowed-hosts=LIST host names the HTTP server answers to besides
                                   localhost and the listen address, comma-separated
                                   ("*": any); others get 403 (DNS rebinding)
  --storage.path=DIR               where components keep state, e.g. WALs (default ./data)
  --component.path=DIR             add DIR to the component search path (repeatable;
                                   also MOONWATCH_COMPONENT_PATH, colon-separated)
  --shutdown.timeout=DURATION      how long a graceful stop may take (default 10s)
  --pipeline.eval-timeout=DURATION how long one evaluation of the pipeline's Lua code
                                   may take: the file, a function argument, the Lua
                                   relabel rules of a batch (default 5s)
]]

local DEFAULTS = {
  ["server.http.listen-addr"] = "127.0.0.1:12345",
  ["server.http.read-header-timeout"] = "10s",
  ["server.http.max-connections"] = "4096",
  ["server.http.max-connections-per-ip"] = "64",
  ["server.http.allowed-hosts"] = "",
  ["storage.path"] = "./data",
  ["shutdown.timeout"] = "10s",
  ["pipeline.eval-timeout"] = "5s",
}

local REPEATED = { ["component.path"] = true }

--- Parses flags and positionals. Returns opts or nil, err.
---@param args string[]
function M.parse_args(args)
  local opts = { flags = {}, positional = {} }
  for k, v in pairs(DEFAULTS) do
    opts.flags[k] = v
  end
  opts.flags["component.path"] = {}
  for i = 1, #args do
    local a = args[i]
    if opts.command == "lua" and #opts.positional > 0 then
      table.insert(opts.positional, a) -- the rest belongs to the script
    elseif a == "--help" or a == "-h" then
      opts.command = opts.command or "help"
    elseif opts.pending then
      local name = opts.pending
      opts.pending = nil
      if REPEATED[name] then
        table.insert(opts.flags[name], a)
      else
        opts.flags[name] = a
      end
    elseif a:sub(1, 2) == "--" and a ~= "--version" then
      local name, value = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
      if DEFAULTS[name] == nil and not REPEATED[name] then
        return nil, "unknown flag --" .. name
      end
      if value == nil then
        opts.pending = name
      elseif REPEATED[name] then
        table.insert(opts.flags[name], value)
      else
        opts.flags[name] = value
      end
    elseif not opts.command then
      opts.command = a
    else
      table.insert(opts.positional, a)
    end
  end
  if opts.pending then
    return nil, "flag --" .. opts.pending .. " needs a value"
  end
  return opts
end

local function component_path(opts, paths)
  local dirs = {}
  for _, d in ipairs(opts.flags["component.path"]) do
    dirs[#dirs + 1] = d
  end
  local env = os.getenv("MOONWATCH_COMPONENT_PATH")
  if env then
    for d in env:gmatch("[^:]+") do
      dirs[#dirs + 1] = d
    end
  end
  dirs[#dirs + 1] = paths.stdlib
  return dirs
end

local function version_text()
  local ffi_rt = require("moonwatch.ffi")
  local version, revision = ffi_rt.version()
  return string.format("moonwatch, version %s (revision: %s)\n  luajit: %s\n  platform: %s/%s\n",
    version, revision, jit.version, jit.os:lower(), jit.arch)
end

local function run_lua(opts)
  local script = opts.positional[1]
  if not script then
    io.stderr:write("moonwatch lua: missing SCRIPT\n")
    return 2
  end
  local chunk, err = loadfile(script)
  if not chunk then
    io.stderr:write(err, "\n")
    return 1
  end
  local arg = { [0] = script }
  for i = 2, #opts.positional do
    arg[i - 1] = opts.positional[i]
  end
  _G.arg = arg
  local ok, res = xpcall(chunk, debug.traceback, unpack(arg))
  if not ok then
    io.stderr:write(tostring(res), "\n")
    return 1
  end
  return type(res) == "number" and res or 0
end

local function main(argv, paths)
  local args = {}
  for i = 1, #argv do
    args[i] = argv[i]
  end
  local opts, err = M.parse_args(args)
  if not opts then
    io.stderr:write("moonwatch: ", err, "\n\n", USAGE)
    return 2, false
  end
  local cmd = opts.command
  if cmd == nil or cmd == "help" or cmd == "-h" then
    io.stdout:write(USAGE)
    return cmd == nil and 2 or 0, false
  elseif cmd == "version" or cmd == "--version" then
    io.stdout:write(version_text())
    return 0, false
  elseif cmd == "lua" then
    return run_lua(opts), false
  elseif cmd == "doc" then
    local text, code = require("moonwatch.doc").main(opts.positional[1], component_path(opts, paths))
    ;(code == 0 and io.stdout or io.stderr):write(text)
    return code, false
  elseif cmd == "convert" then
    local file = opts.positional[1]
    if not file or #opts.positional > 1 then
      io.stderr:write("moonwatch convert: expected exactly one CONFIG.alloy\n\n", USAGE)
      return 2, false
    end
    local f, ferr = io.open(file, "rb")
    if not f then
      io.stderr:write("moonwatch convert: cannot open ", tostring(ferr), "\n")
      return 1, false
    end
    local src, rerr = f:read("*a") -- nil for a directory
    f:close()
    if not src then
      io.stderr:write("moonwatch convert: cannot read ", file, ": ", tostring(rerr), "\n")
      return 1, false
    end
    local lua, cerr = require("moonwatch.alloy.convert").convert(src, file)
    if not lua then
      io.stderr:write(cerr, "\n")
      return 1, false
    end
    io.stdout:write(lua)
    return 0, false
  elseif cmd == "run" or cmd == "check" then
    local file = opts.positional[1]
    if not file or #opts.positional > 1 then
      io.stderr:write("moonwatch ", cmd, ": expected exactly one PIPELINE.lua\n\n", USAGE)
      return 2, false
    end
    local runtime = require("moonwatch.runtime")
    local settings = {
      file = file,
      listen_addr = opts.flags["server.http.listen-addr"],
      http = {
        read_header_timeout = opts.flags["server.http.read-header-timeout"],
        max_connections = opts.flags["server.http.max-connections"],
        max_connections_per_ip = opts.flags["server.http.max-connections-per-ip"],
        allowed_hosts = opts.flags["server.http.allowed-hosts"],
      },
      storage_path = opts.flags["storage.path"],
      component_path = component_path(opts, paths),
      shutdown_timeout = opts.flags["shutdown.timeout"],
      eval_timeout = opts.flags["pipeline.eval-timeout"],
    }
    if cmd == "check" then
      return runtime.check(settings), false
    end
    local code = runtime.start(settings)
    if code then
      return code, false
    end
    return 0, true
  end
  io.stderr:write("moonwatch: unknown command ", tostring(cmd), "\n\n", USAGE)
  return 2, false
end

--- Entry point called by the binary with argv (0-based) and the module paths.
--- Returns the exit code and whether the event loop should run. An error that
--- escapes is a bug: users get "internal error" and its message, the traceback
--- goes to the log at debug level.
---@param argv table
---@param paths table { lua = dir, stdlib = dir }
---@return integer code, boolean run_loop
function M.main(argv, paths)
  local errors = require("moonwatch.errors")
  errors.add_source_dir(paths.lua and (paths.lua .. "/moonwatch"))
  errors.add_source_dir(paths.stdlib)
  local ok, code, run_loop = xpcall(main, debug.traceback, argv, paths)
  if not ok then
    io.stderr:write("moonwatch: ", errors.report(code, "moonwatch"), "\n")
    return 70, false
  end
  return code, run_loop
end

return M
