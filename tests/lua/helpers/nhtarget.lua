-- The client_golang scrape target of the native histogram specs (tests/e2e/fixtures/nhtarget):
-- built once per build dir with Debian's Go and client_golang in GOPATH mode (offline), started
-- on a free port.
local proc = require("helpers.proc")

local M = {}

local BUILD = os.getenv("MOONWATCH_BUILD_DIR") or "build"
M.bin = BUILD .. "/nhtarget"

--- Builds the target if its binary is missing or older than its source; raises with go's
--- output when it cannot (golang-go and golang-github-prometheus-client-golang-dev are in
--- tests/install-deps.sh's list).
function M.build()
  local src = proc.source .. "/tests/e2e/fixtures/nhtarget"
  local fresh = proc.sh(string.format("[ %s -nt %s/main.go ] && echo yes", proc.quote(M.bin), proc.quote(src)))
  if fresh:find("yes", 1, true) then
    return M.bin
  end
  local out = proc.sh(string.format("cd %s && GOCACHE=%s GOPATH=/usr/share/gocode GO111MODULE=off "
    .. "go build -o %s . 2>&1; echo rc=$?", proc.quote(src), proc.quote(BUILD .. "/gocache"),
    proc.quote(M.bin)))
  assert(out:find("rc=0", 1, true), "building tests/e2e/fixtures/nhtarget failed (needs golang-go and "
    .. "golang-github-prometheus-client-golang-dev):\n" .. out)
  return M.bin
end

--- Starts the target; returns its address ("127.0.0.1:PORT") and pid.
function M.start()
  M.build()
  local port, pid = proc.start_server(proc.quote(M.bin) .. " 127.0.0.1:%d",
    "curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/metrics | grep -q 200 && echo ok")
  return "127.0.0.1:" .. port, pid
end

return M
