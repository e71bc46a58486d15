-- End-to-end: the container image. tests/container/image.sh builds the top-level Dockerfile
-- with podman on a Debian 12 base made with mmdebstrap (cached in /var/cache/moonwatch); the
-- image then runs the shipped self-monitoring pipeline mounted read-only: /-/ready and
-- /metrics answer on the published port (so it listens on 0.0.0.0 inside), it runs as the
-- non-root user 10001 as PID 1, writes its storage volume, finds custom components in
-- /etc/moonwatch/components, and exits 0 on SIGTERM.
local proc = require("helpers.proc")

local TAG = "localhost/moonwatch-test:latest"
local PODMAN = "podman --runtime runc --cgroup-manager cgroupfs"
local ULIMITS = "--ulimit nofile=4096:4096 --ulimit nproc=4096:4096"
local q = proc.quote

--- Runs a shell command (at most secs, default 60 s); returns its exit code and what it printed
--- (stdout and stderr).
local function sh(cmd, secs)
  local out = os.tmpname()
  local code = proc.exit_code(os.execute(string.format("timeout -k 5 %d %s >%s 2>&1", secs or 60, cmd, out)))
  local s = proc.read_file(out)
  os.remove(out)
  return code, s
end

local image, skip_reason
if proc.sanitized() then
  skip_reason = "the container test runs in the main build's suite (the image builds its own binary)"
else
  -- on a machine without the cached base and layers: mmdebstrap, then apt and a compile in the
  -- image, several minutes on 2 cores (the cached build takes seconds)
  local code, out = sh(q(proc.source .. "/tests/container/image.sh") .. " " .. q(proc.source) .. " " .. TAG, 900)
  if code == 77 then
    skip_reason = (out:gsub("%s+$", ""):match("([^\n]*)$"))
  elseif code ~= 0 then
    error("building the image failed:\n" .. out)
  else
    image = TAG
  end
end

describe("the container image", function()
  local volume
  local tmp = proc.tmpdir()
  local suffix = os.time() .. "-" .. math.random(1e6)
  local cid = "moonwatch-test-" .. suffix -- every container's name: after_each removes them
  after_each(function()
    sh(PODMAN .. " rm --force --volumes --time 0 " .. cid)
    if volume then
      sh(PODMAN .. " volume rm --force " .. volume)
      volume = nil
    end
  end)

  it("runs a mounted pipeline as a non-root user, serves on 0.0.0.0:12345, writes its volume, exits 0 on SIGTERM",
    function()
      if not image then
        pending(skip_reason)
        return
      end
      volume = "moonwatch-test-" .. suffix
      local code, out = sh(string.format("%s run -d --name %s %s -p 127.0.0.1::12345 -v %s:/etc/moonwatch/pipeline.lua:ro "
        .. "-v %s:/var/lib/moonwatch -e SCRAPE_INTERVAL=1s -e SCRAPE_TIMEOUT=1s %s", PODMAN, cid, ULIMITS,
        q(proc.source .. "/examples/self-monitoring.lua"), volume, image))
      assert.equals(0, code, out)
      local _, port = sh(PODMAN .. " port " .. cid .. " 12345/tcp")
      local base = "http://" .. assert(port:match("(127%.0%.0%.1:%d+)"), port)

      proc.wait_http(base .. "/-/ready", 20)
      local status, metrics = proc.http("GET", base .. "/metrics")
      assert.equals(200, status)
      assert.matches('moonwatch_build_info{[^}]*version="', metrics)
      local _, logs = sh(PODMAN .. " logs " .. cid)
      assert.matches('msg="pipeline running" components=%d+ file=/etc/moonwatch/pipeline.lua http=0.0.0.0:12345',
        logs)

      -- the process is PID 1 (exec-form entrypoint), uid and gid 10001
      local _, status_file = sh(PODMAN .. " exec " .. cid .. " cat /proc/1/status")
      assert.matches("\nUid:%s+10001%s+10001", status_file)
      assert.matches("\nGid:%s+10001%s+10001", status_file)
      local _, cmdline = sh(PODMAN .. " exec " .. cid .. " cat /proc/1/cmdline")
      assert.equals("/usr/local/bin/moonwatch\0run\0", cmdline:sub(1, 29))
      -- the pipeline is read-only for it
      local wcode = sh(PODMAN .. " exec " .. cid .. " sh -c 'echo x >> /etc/moonwatch/pipeline.lua'")
      assert.are_not.equals(0, wcode)

      -- the storage volume: the scrapes' samples and its own log lines, written by uid 10001
      local _, mount = sh(PODMAN .. " volume inspect --format '{{.Mountpoint}}' " .. volume)
      mount = mount:gsub("%s+$", "")
      proc.wait_for(function()
        return proc.read_file(mount .. "/self-monitoring.prom"):find("moonwatch_build_info", 1, true)
      end, 20, "samples in the storage volume")
      assert.equals("10001", proc.sh("stat -c %u " .. q(mount .. "/self-monitoring.prom")):gsub("%s+$", ""))

      -- SIGTERM reaches moonwatch, which stops its components and exits 0
      assert.equals(0, (sh(PODMAN .. " kill --signal TERM " .. cid)))
      local _, rc = sh(PODMAN .. " wait " .. cid)
      assert.equals("0", rc:gsub("%s+$", ""))
      _, logs = sh(PODMAN .. " logs " .. cid)
      assert.matches('msg="shutting down" signal=SIGTERM', logs)
      assert.matches('msg="shutdown complete"', logs)
    end)

  it("finds custom components in /etc/moonwatch/components", function()
    if not image then
      pending(skip_reason)
      return
    end
    local code, out = sh(string.format("%s run --rm --name %s %s -v %s:/etc/moonwatch/components:ro "
      .. "-v %s:/etc/moonwatch/p.lua:ro %s check /etc/moonwatch/p.lua", PODMAN, cid, ULIMITS,
      q(proc.source .. "/examples/components"), q(proc.source .. "/examples/custom-component.lua"), image))
    sh(PODMAN .. " rm --force --volumes --time 0 " .. cid)
    assert.equals(0, code, out)
    -- and a pipeline that is wrong is refused with file:line, exit 1
    local bad = proc.write(tmp .. "/bad.lua", 'prometheus.scrape "x" { targets = {}, forward_to = {}, bogus = 1 }\n')
    os.execute("chmod 0644 " .. q(bad))
    code, out = sh(string.format("%s run --rm --name %s %s -v %s:/etc/moonwatch/pipeline.lua:ro %s", PODMAN, cid,
      ULIMITS, q(bad), image))
    assert.equals(1, code, out)
    assert.matches('/etc/moonwatch/pipeline.lua:1: prometheus.scrape "x": ', out, 1, true)
  end)
end)
