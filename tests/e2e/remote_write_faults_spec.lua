-- End-to-end faults of prometheus.remote_write against real receivers: a receiver down then up,
-- SIGKILL and restart, a damaged cursor file, a full disk, 5xx then 2xx, 4xx dropped, 429 with
-- Retry-After, a corrupt WAL tail, a bounded WAL behind a dead endpoint.
local proc = require("helpers.proc")
local cjson = require("cjson")
local rw = require("helpers.rw_e2e")

local tmp, sh, free_port = rw.tmp, rw.sh, rw.free_port
local start_prometheus, start_target = rw.start_prometheus, rw.start_target
local prometheus_samples, pipeline = rw.prometheus_samples, rw.pipeline
local metric, wait_all = rw.metric, rw.wait_all
local scripted, wait_requests = rw.scripted, rw.wait_requests

describe("prometheus.remote_write faults", function()
  teardown(proc.kill_spawned)

  it("delivers everything once a receiver that was down comes up, unhealthy while it is down", function()
    local log = tmp .. "/served2"
    local tport = start_target(log)
    local pport = free_port()
    local file = pipeline("down", tport, { "http://127.0.0.1:" .. pport .. "/api/v1/write" }, nil,
      { endpoint = 'remote_timeout = "1s",' })
    local h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data2" })
    finally(function()
      h.kill("KILL")
    end)
    local function health()
      local _, body = proc.http("GET", h.base .. "/api/v0/components/prometheus.remote_write.out")
      return cjson.decode(body).health
    end
    -- nothing sent for longer than remote_timeout (1 s) with samples pending: stuck, and said so
    os.execute("sleep 3")
    local down = health()
    assert.equals("unhealthy", down.state)
    assert.matches("samples pending and none sent for %ds", down.message)
    assert.matches("last error: connect: connection refused", down.message, 1, true)
    assert.is_true(metric(h, "prometheus_remote_storage_oldest_unsent_sample_age_seconds") >= 1.5)
    assert.equals(0, metric(h, "prometheus_remote_storage_queue_highest_sent_timestamp_seconds"))
    assert.is_true(metric(h, "prometheus_remote_storage_highest_timestamp_in_seconds") > 1.7e9)
    assert.is_true(h.read():find('msg="remote write endpoint is stuck"', 1, true) ~= nil)
    start_prometheus(pport, tmp .. "/prom2")
    local missing = wait_all(log, function()
      return prometheus_samples(pport)
    end)
    assert.equals(0, missing)
    assert.is_true(metric(h, "prometheus_remote_storage_samples_retried_total") > 0)
    assert.equals(0, metric(h, "prometheus_remote_storage_samples_failed_total"))
    -- sending again: healthy, caught up
    os.execute("sleep 1.5")
    assert.same("healthy", health().state)
    assert.is_true(metric(h, "prometheus_remote_storage_oldest_unsent_sample_age_seconds") < 1.5)
    local lag = metric(h, "prometheus_remote_storage_highest_timestamp_in_seconds")
      - metric(h, "prometheus_remote_storage_queue_highest_sent_timestamp_seconds")
    assert.is_true(lag >= 0 and lag <= 1, "lag " .. lag)
    assert.is_true(h.read():find('msg="remote write endpoint sends again"', 1, true) ~= nil)
    h.kill("TERM")
    assert.equals(0, h.wait(15))
  end)

  it("loses nothing acknowledged when killed with SIGKILL, and resends after a restart", function()
    local log = tmp .. "/served3"
    local tport = start_target(log)
    local pport = free_port()
    start_prometheus(pport, tmp .. "/prom3")
    local file = pipeline("kill", tport, { "http://127.0.0.1:" .. pport .. "/api/v1/write" })
    -- a long batch deadline: at the kill most samples are in the WAL, not yet sent
    local src = io.open(file):read("*a"):gsub('batch_send_deadline = "200ms"', 'batch_send_deadline = "30s"')
    proc.write(file, src)
    local h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data3" })
    os.execute("sleep 2.5")
    h.kill("KILL")
    h.wait(5)
    local killed_at = math.floor(require("moonwatch.ffi").time_now() * 1000)
    -- samples served up to 300 ms before the kill were scraped and acknowledged by then
    local function acked(k)
      return tonumber(k:match(" (%d+)$")) < killed_at - 300
    end
    proc.write(file, src:gsub('batch_send_deadline = "30s"', 'batch_send_deadline = "200ms"'))
    local h2 = proc.start_run(file, { "--storage.path=" .. tmp .. "/data3" })
    assert.is_true(h2.wait_log("replaying the WAL", 5), h2.read())
    local missing = wait_all(log, function()
      return prometheus_samples(pport)
    end, 15, acked)
    assert.equals(0, missing)
    assert.equals(0, metric(h2, "prometheus_remote_storage_samples_failed_total"))
    h2.kill("TERM")
    assert.equals(0, h2.wait(15))
  end)

  it("after a restart: nothing sent before is pending; a damaged cursor is warned about, counted, its copy used",
    function()
    local log = tmp .. "/served-cursor"
    local tport = start_target(log)
    local pport = free_port()
    start_prometheus(pport, tmp .. "/prom-cursor")
    local data = tmp .. "/data-cursor"
    local file = pipeline("cursor", tport, { "http://127.0.0.1:" .. pport .. "/api/v1/write" }, nil,
      { endpoint = 'remote_timeout = "1s",' })
    local live -- the run going on, killed if the test fails
    finally(function()
      if live then
        live.kill("KILL")
      end
    end)
    local function stop(h)
      h.kill("TERM")
      assert.equals(0, h.wait(15))
      live = nil
    end
    -- runs until it has sent what it scraped (nothing pending); a scrape that timed out on a
    -- loaded machine is served and never appended, so the target's log is no measure here
    local function run_once()
      live = proc.start_run(file, { "--storage.path=" .. data })
      os.execute("sleep 1.5") -- a few scrapes
      local caught_up
      for _ = 1, 75 do
        if metric(live, "prometheus_remote_storage_samples_total") > 0
          and metric(live, "prometheus_remote_storage_samples_pending") == 0 then
          caught_up = true
          break
        end
        os.execute("sleep 0.2")
      end
      assert.is_true(caught_up, "samples still pending after 15 s: "
        .. metric(live, "prometheus_remote_storage_samples_pending"))
      os.execute("sleep 1.2") -- a cursor save after the last commit (at most one a second)
      return live
    end
    stop(run_once())
    -- restarted: what the WAL replays was sent, so nothing is pending, the endpoint is not stuck,
    -- and a stop has nothing left to flush
    local h = run_once()
    assert.is_true(h.wait_log("replaying the WAL", 1), h.read("err"))
    assert.is_true(metric(h, "prometheus_remote_storage_samples_pending") <= 10) -- at most a scrape in flight
    os.execute("sleep 1.5") -- past remote_timeout: a wrong pending count would look stuck
    local _, comp = proc.http("GET", h.base .. "/api/v0/components/prometheus.remote_write.out")
    assert.equals("healthy", cjson.decode(comp).health.state, comp)
    local first = metric(h, "prometheus_remote_write_wal_samples_appended_total")
    stop(h)
    assert.is_nil(h.read("err"):find("samples not yet sent", 1, true), h.read("err"))
    local dir = data .. "/prometheus.remote_write.out"
    local cursor
    for f in proc.sh("ls -a " .. proc.quote(dir)):gmatch("[^\n]+") do
      if f:match("^cursor%.") then
        cursor = dir .. "/" .. f
      end
    end
    assert.is_truthy(cursor, "no cursor file in " .. dir)
    proc.write(cursor, "mwcursor 2 1 99 0 0bad0bad\n")
    local h2 = run_once()
    assert.is_true(h2.wait_log('msg="remote write cursor damaged"', 5), h2.read("err"))
    assert.matches("using its previous copy", h2.read("err"), 1, true)
    assert.equals(1, metric(h2, "prometheus_remote_write_wal_cursor_errors_total"))
    -- the previous copy is at most a save (a second) older: a few samples again, not the whole WAL
    -- (less what is still in flight: this can be below 0)
    local resent = metric(h2, "prometheus_remote_storage_samples_total")
      - metric(h2, "prometheus_remote_write_wal_samples_appended_total")
    assert.is_true(resent < first / 2, string.format("resent %d of %d samples", resent, first))
    stop(h2)
  end)

  it("counts samples a full disk drops, unhealthy while the WAL refuses them, and recovers", function()
    local mnt = tmp .. "/full"
    os.execute("mkdir -p " .. proc.quote(mnt))
    if os.execute("mount -t tmpfs -o size=64m tmpfs " .. proc.quote(mnt) .. " 2>/dev/null") ~= 0 then
      pending("mounting a tmpfs needs root")
      return
    end
    finally(function()
      os.execute("umount -l " .. proc.quote(mnt))
    end)
    local tport = start_target(tmp .. "/served-full", 2000)
    local pport = free_port()
    start_prometheus(pport, tmp .. "/prom-full")
    local file = pipeline("full", tport, { "http://127.0.0.1:" .. pport .. "/api/v1/write" })
    local h = proc.start_run(file, { "--storage.path=" .. mnt })
    finally(function()
      h.kill("KILL")
    end)
    local function health()
      local _, body = proc.http("GET", h.base .. "/api/v0/components/prometheus.remote_write.out")
      return cjson.decode(body).health
    end
    local function dropped()
      return metric(h, "prometheus_remote_storage_samples_dropped_total", 'reason="wal_append_failed"')
    end
    os.execute("sleep 1.5")
    assert.equals(0, dropped(), h.read("err"))
    assert.equals("healthy", health().state)
    -- the disk fills up
    local filler = mnt .. "/filler"
    os.execute("dd if=/dev/zero of=" .. proc.quote(filler) .. " bs=1M 2>/dev/null")
    local deadline = os.time() + 15
    while dropped() < 4000 and os.time() < deadline do
      os.execute("sleep 0.3")
    end
    local lost = dropped()
    assert.is_true(lost >= 4000, "dropped " .. lost)
    local down = health()
    assert.equals("unhealthy", down.state)
    assert.matches("WAL appends failing since %d+s ago %(%d+ samples dropped%), last %d+s ago: write segment %d+: No "
      .. "space left on device", down.message)
    assert.is_true(h.wait_log('msg="WAL append failed; the samples are dropped"', 1), h.read("err"))
    -- room again: appends go on, nothing more dropped; healthy a minute after the last failure
    os.remove(filler)
    local after = dropped()
    os.execute("sleep 1.5")
    assert.equals(after, dropped())
    assert.equals("unhealthy", health().state)
    deadline = os.time() + 75
    while health().state ~= "healthy" and os.time() < deadline do
      os.execute("sleep 0.3")
    end
    assert.equals("healthy", health().state)
    assert.is_true(h.wait_log('msg="WAL appends again"', 1), h.read("err"))
    assert.equals(after, dropped())
    h.kill("TERM")
    assert.equals(0, h.wait(15))
  end)

  it("retries 5xx with backoff until the receiver accepts, with the protocol's headers", function()
    local h, rlog = scripted("500,500,200", "retry")
    local reqs = wait_requests(rlog, 4)
    assert.is_true(#reqs >= 4)
    assert.same({ 500, 500, 200 }, { reqs[1].status, reqs[2].status, reqs[3].status })
    assert.equals(reqs[1].bytes, reqs[2].bytes) -- the same request again
    local r = reqs[1]
    assert.equals("snappy", r.encoding)
    assert.equals("application/x-protobuf", r.type)
    assert.equals("0.1.0", r.version)
    assert.matches("^moonwatch/%d", r.agent)
    assert.is_true(metric(h, "prometheus_remote_storage_samples_retried_total") > 0)
    assert.is_true(metric(h, "prometheus_remote_storage_samples_total") > 0)
    assert.equals(0, metric(h, "prometheus_remote_storage_samples_failed_total"))
    h.kill("TERM")
    assert.equals(0, h.wait(15))
  end)

  it("drops and counts what a 400 rejects, and goes on with the next samples", function()
    local h, rlog = scripted("400", "bad")
    local reqs = wait_requests(rlog, 3)
    assert.is_true(#reqs >= 3)
    for i = 2, #reqs do
      assert.is_true(reqs[i].time > reqs[i - 1].time)
    end
    assert.is_true(metric(h, "prometheus_remote_storage_samples_failed_total") > 0)
    assert.equals(0, metric(h, "prometheus_remote_storage_samples_retried_total"))
    h.kill("KILL")
  end)

  it("honours Retry-After on 429", function()
    local h, rlog = scripted("429:1,200", "throttled")
    local reqs = wait_requests(rlog, 2)
    assert.equals(429, reqs[1].status)
    assert.equals(200, reqs[2].status)
    assert.is_true(reqs[2].time - reqs[1].time >= 0.95, "retried after " .. (reqs[2].time - reqs[1].time))
    h.kill("KILL")
  end)

  it("repairs a torn WAL tail at start, counts it, and sends what was intact", function()
    local log = tmp .. "/served-torn"
    local tport = start_target(log)
    local dead = free_port()
    local data = tmp .. "/data-torn"
    local h = proc.start_run(pipeline("torn", tport, { "http://127.0.0.1:" .. dead .. "/api/v1/write" }),
      { "--storage.path=" .. data })
    os.execute("sleep 2")
    h.kill("KILL")
    h.wait(5)
    local seg = sh("ls -1 " .. data .. "/prometheus.remote_write.out/wal/0* | tail -n 1"):gsub("%s+$", "")
    local size = tonumber(sh("stat -c %s " .. seg))
    os.execute(string.format("truncate -s %d %s", size - 5, seg))
    local pport = free_port()
    start_prometheus(pport, tmp .. "/prom-torn")
    local src = io.open(tmp .. "/torn.lua"):read("*a"):gsub(tostring(dead), tostring(pport))
    local h2 = proc.start_run(proc.write(tmp .. "/torn2.lua", src), { "--storage.path=" .. data })
    assert.is_true(h2.wait_log("repaired the WAL", 5), seg .. " " .. size .. "\n" .. h2.read())
    assert.is_true(metric(h2, "prometheus_remote_write_wal_corruptions_repaired_total") >= 1)
    -- samples served at least a second before the kill were in earlier, intact records
    for _ = 1, 50 do
      if next(prometheus_samples(pport)) then
        break
      end
      os.execute("sleep 0.2")
    end
    assert.truthy(next(prometheus_samples(pport)), "nothing arrived")
    h2.kill("TERM")
    assert.equals(0, h2.wait(15))
  end)

  it("keeps the WAL bounded by max_keepalive_time behind a dead endpoint, counting what it drops", function()
    local log = tmp .. "/served-bound"
    local tport = start_target(log)
    local dead = free_port()
    local h = proc.start_run(pipeline("bound", tport, { "http://127.0.0.1:" .. dead .. "/api/v1/write" },
      'wal = { truncate_frequency = "1s", min_keepalive_time = "1s", max_keepalive_time = "2s" },'),
      { "--storage.path=" .. tmp .. "/data-bound" })
    os.execute("sleep 5")
    assert.is_true(metric(h, "prometheus_remote_storage_samples_dropped_total", 'reason="too_old"') > 0)
    local segs = tonumber(sh("ls -1 " .. tmp .. "/data-bound/prometheus.remote_write.out/wal | grep -c '^0'"))
    assert.is_true(segs <= 4, segs .. " segments")
    h.kill("KILL")
  end)
end)
