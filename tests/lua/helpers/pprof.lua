--- helpers.pprof: the real pprof tool (google/pprof, built once from Debian's source package
--- golang-github-google-pprof-dev with golang-go, offline) to read what /debug/pprof serves.
local proc = require("helpers.proc")

local M = {}

local build_dir = os.getenv("MOONWATCH_BUILD_DIR") or "build"

--- The path of the pprof binary, built into the build directory the first time (specs running at
--- once each build their own copy and move it in place); or nil, err.
---@return string|nil path, string|nil err
function M.tool()
  local bin = build_dir .. "/pprof"
  if proc.sh("test -x " .. proc.quote(bin) .. " && echo yes") == "yes\n" then
    return bin
  end
  local out = proc.sh(string.format("cd /tmp && GOPATH=/usr/share/gocode GO111MODULE=off "
    .. "GOCACHE=%s HOME=%s go build -o %s.$$ github.com/google/pprof 2>&1 && mv %s.$$ %s && echo built",
    proc.quote(build_dir .. "/gocache"), proc.quote(build_dir), proc.quote(bin), proc.quote(bin), proc.quote(bin)))
  if not out:find("built\n$") then
    return nil, "building pprof (apt-get install golang-go golang-github-google-pprof-dev): " .. out
  end
  return bin
end

--- Runs `pprof <args> <file>`; returns its output (stdout and stderr) and whether it exited 0.
---@return string out, boolean ok
function M.run(args, file)
  local bin = assert(M.tool())
  local out = proc.sh(string.format("%s %s %s 2>&1; echo \"rc=$?\"", proc.quote(bin), args, proc.quote(file)))
  local rc = out:match("rc=(%d+)\n$")
  return out:gsub("rc=%d+\n$", ""), rc == "0"
end

return M
