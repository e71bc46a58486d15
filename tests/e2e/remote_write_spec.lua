-- End-to-end: prometheus.remote_write into a real Prometheus and VictoriaMetrics
-- (exact series, values and timestamps), exemplars, write relabeling, metadata, more
-- shards behind a slow receiver (series still in order), shards going down and up, and
-- sample_age_limit. Faults are in remote_write_faults_spec.
local proc = require("helpers.proc")
local cjson = require("cjson")
local rw = require("helpers.rw_e2e")

local tmp, SRC, free_port, spawn, wait_http = rw.tmp, rw.SRC, rw.free_port, rw.spawn, rw.wait_http
local start_prometheus, start_vm, start_target = rw.start_prometheus, rw.start_vm, rw.start_target
local served, prometheus_samples = rw.served, rw.prometheus_samples
local vm_samples, pipeline, metric = rw.vm_samples, rw.pipeline, rw.metric
local wait_all, requests = rw.wait_all, rw.requests

describe("prometheus.remote_write", function()
  teardown(proc.kill_spawned)

  it("delivers exact series, values and timestamps to Prometheus and VictoriaMetrics", function()
    local log = tmp .. "/served1"
    local tport = start_target(log)
    local pport = free_port()
    start_prometheus(pport, tmp .. "/prom1")
    local vport = free_port()
    start_vm(vport, tmp .. "/vm1")
    local file = pipeline("exact", tport, { "http://127.0.0.1:" .. pport .. "/api/v1/write",
      "http://127.0.0.1:" .. vport .. "/api/v1/write" })
    local h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data1" })
    os.execute("sleep 3")
    h.kill("TERM")
    assert.equals(0, h.wait(15))
    local want, n = served(log)
    assert.is_true(n >= 15, "the target was scraped " .. n / 5 .. " times")
    -- VictoriaMetrics makes fresh samples searchable after a short delay
    assert.equals(0, wait_all(log, function()
      return vm_samples(vport)
    end, 15))
    local prom, vm = prometheus_samples(pport), vm_samples(vport)
    local prom_n, vm_n = 0, 0
    for _ in pairs(prom) do
      prom_n = prom_n + 1
    end
    for _ in pairs(vm) do
      vm_n = vm_n + 1
    end
    for k, v in pairs(want) do
      assert.equals(v, prom[k], "Prometheus: sample " .. k)
      assert.equals(v, vm[k], "VictoriaMetrics: sample " .. k)
    end
    assert.equals(n, prom_n)
    assert.equals(n, vm_n)
  end)

  it("sends OpenMetrics exemplars to Prometheus, and none with send_exemplars = false", function()
    local tport = start_target(tmp .. "/served-ex")
    local pa, pb = free_port(), free_port()
    start_prometheus(pa, tmp .. "/prom-ex", "--enable-feature=exemplar-storage")
    start_prometheus(pb, tmp .. "/prom-noex", "--enable-feature=exemplar-storage")
    local file = proc.write(tmp .. "/ex.lua", string.format([[
prometheus.scrape "t" {
  targets = {{ __address__ = "127.0.0.1:%d", __metrics_path__ = "/om" }},
  forward_to = { prometheus.remote_write.out.receiver },
  scrape_interval = "500ms",
  scrape_timeout = "500ms",
}
prometheus.remote_write "out" {
  endpoint = {
    { url = "http://127.0.0.1:%d/api/v1/write", queue_config = { batch_send_deadline = "200ms" } },
    { url = "http://127.0.0.1:%d/api/v1/write", send_exemplars = false,
      queue_config = { batch_send_deadline = "200ms" } },
  },
}
]], tport, pa, pb))
    local h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data-ex" })
    local function exemplars(port)
      local _, body = proc.http("GET", string.format("http://127.0.0.1:%d/api/v1/query_exemplars?query=rw_ex_total"
        .. "&start=%d&end=%d", port, os.time() - 600, os.time() + 600))
      local out = {}
      for _, r in ipairs(cjson.decode(body).data or {}) do
        for _, e in ipairs(r.exemplars) do
          out[#out + 1] = { series = r.seriesLabels.series, labels = e.labels, value = tonumber(e.value),
            ts = math.floor(e.timestamp * 1000 + 0.5) }
        end
      end
      return out
    end
    local got
    local deadline = os.time() + 15
    repeat
      os.execute("sleep 0.3")
      got = exemplars(pa)
    until #got >= 4 or os.time() > deadline
    local sent = metric(h, "prometheus_remote_storage_exemplars_total")
    local appended = metric(h, "prometheus_remote_write_wal_exemplars_appended_total")
    h.kill("TERM")
    assert.equals(0, h.wait(15))
    assert.is_true(#got >= 4, "exemplars in Prometheus: " .. #got)
    -- each one exactly as served: labels, value, timestamp (that of its sample, value R)
    local _, body = proc.http("GET", "http://127.0.0.1:" .. pa .. "/api/v1/query?query=rw_ex_total%5B1h%5D")
    local samples = {}
    for _, r in ipairs(cjson.decode(body).data.result) do
      for _, v in ipairs(r.values) do
        samples[r.metric.series .. " " .. math.floor(v[1] * 1000 + 0.5)] = tonumber(v[2])
      end
    end
    for _, e in ipairs(got) do
      local r = samples[e.series .. " " .. e.ts]
      assert.is_not_nil(r, "a sample at the exemplar's timestamp " .. e.ts)
      assert.same({ trace_id = string.format("t%s-%d", e.series, r) }, e.labels)
      assert.equals(r + 0.5, e.value)
    end
    assert.is_true(sent >= 4 and appended >= sent, string.format("sent %d, appended %d", sent, appended))
    -- send_exemplars = false: the samples arrive, no exemplar
    local _, nb = proc.http("GET", "http://127.0.0.1:" .. pb .. "/api/v1/query?query=rw_ex_total")
    assert.is_true(#cjson.decode(nb).data.result == 2, nb)
    assert.equals(0, #exemplars(pb))
  end)

  it("applies write_relabel_config: series it drops never reach Prometheus", function()
    local log = tmp .. "/served-relabel"
    local tport = start_target(log)
    local pport = free_port()
    start_prometheus(pport, tmp .. "/prom-relabel")
    local file = pipeline("relabel", tport, { "http://127.0.0.1:" .. pport .. "/api/v1/write" })
    local src = io.open(file):read("*a"):gsub("queue_config = {", 'write_relabel_config = { { source_labels = '
      .. '{ "series" }, regex = "[12]", action = "drop" } }, queue_config = {')
    proc.write(file, src)
    local h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data-relabel" })
    os.execute("sleep 3")
    local dropped = metric(h, "prometheus_remote_storage_samples_dropped_total", 'reason="dropped_series"')
    local failed = metric(h, "prometheus_remote_storage_samples_failed_total")
    h.kill("TERM")
    assert.equals(0, h.wait(15))
    assert.is_true(dropped > 0, "relabel drops are counted")
    assert.equals(0, failed)
    local kept = function(k)
      return k:match("^[345] ") ~= nil
    end
    assert.equals(0, wait_all(log, function()
      return prometheus_samples(pport)
    end, 15, kept))
    local want = served(log)
    local prom = prometheus_samples(pport)
    local n = 0
    for k, v in pairs(prom) do
      assert.is_true(kept(k), "series 1 and 2 are dropped: " .. k)
      assert.equals(want[k], v, "sample " .. k)
      n = n + 1
    end
    local want_n = 0
    for k in pairs(want) do
      if kept(k) then
        want_n = want_n + 1
      end
    end
    assert.is_true(want_n >= 3)
    assert.equals(want_n, n)
  end)

  it("examples/self-monitoring.lua ships to REMOTE_WRITE_URL", function()
    local pport = free_port()
    start_prometheus(pport, tmp .. "/prom-self")
    local h = proc.start_run(SRC .. "/examples/self-monitoring.lua", { "--storage.path=" .. tmp .. "/data-self" },
      { env = string.format("REMOTE_WRITE_URL=http://127.0.0.1:%d/api/v1/write SCRAPE_INTERVAL=1s SCRAPE_TIMEOUT=1s",
        pport) })
    local jobs
    for _ = 1, 60 do
      local _, body = proc.http("GET", "http://127.0.0.1:" .. pport .. "/api/v1/query?query=up")
      jobs = {}
      for _, r in ipairs(cjson.decode(body).data.result) do
        jobs[r.metric.job] = r.value[2]
      end
      if jobs["integrations/self"] and jobs["integrations/unix"] and jobs["integrations/process"] then
        break
      end
      os.execute("sleep 0.25")
    end
    assert.same({ ["integrations/self"] = "1", ["integrations/unix"] = "1", ["integrations/process"] = "1" }, jobs)
    h.kill("TERM")
    assert.equals(0, h.wait(15))
  end)


  -- metadata_config: one pipeline, several endpoints. Prometheus 2.42 (Debian) accepts metadata-only
  -- requests but does not store them (its remote-write handler reads only the series, and
  -- /api/v1/metadata shows what its own scrapes saw), so the entries are checked with Lua receivers
  -- that decode each request with runtime/remote/encode.c's decoder.
  describe("metadata_config", function()
    local h, logs, pport = nil, {}, nil
    local RW_META = { -- sorted by name
      { type = 2, name = "rw_meta_family_1", help = "Family 1.", unit = "" },
      { type = 2, name = "rw_meta_family_2", help = "Family 2.", unit = "" },
      { type = 1, name = "rw_meta_requests", help = "Requests served.", unit = "" },
      { type = 2, name = "rw_meta_seconds", help = 'A gauge with "quotes" and \\ a backslash.', unit = "seconds" },
    }

    -- The decoded requests a receiver logged.
    local function decoded(name)
      local out = {}
      local f = io.open(logs[name].decoded)
      if not f then
        return out
      end
      for line in f:lines() do
        out[#out + 1] = cjson.decode(line)
      end
      f:close()
      return out
    end

    -- The metadata requests of a receiver grouped into rounds: each round sends the whole set sorted
    -- by name, so a request whose first name does not come after the previous one's last starts a round.
    local function rounds(name)
      local out, last = {}, nil
      for _, r in ipairs(decoded(name)) do
        local md = r.metadata
        if type(md) == "table" and #md > 0 then
          if not last or md[1].name <= last then
            out[#out + 1] = { requests = {}, entries = {} }
          end
          local round = out[#out]
          round.requests[#round.requests + 1] = r
          for _, e in ipairs(md) do
            round.entries[#round.entries + 1] = e
          end
          last = md[#md].name
        end
      end
      return out
    end

    local function rw_meta(entries)
      local out = {}
      for _, e in ipairs(entries) do
        if e.name:match("^rw_meta_") then
          out[#out + 1] = e
        end
      end
      table.sort(out, function(a, b)
        return a.name < b.name
      end)
      return out
    end

    local function metric_for(name, url)
      local _, body = proc.http("GET", h.base .. "/metrics")
      for labels, v in body:gmatch("\n" .. name .. "{([^}]*)} ([^\n]+)") do
        if labels:find('url="' .. url .. '"', 1, true) then
          return tonumber(v)
        end
      end
      return 0
    end

    local function url(name)
      return "http://127.0.0.1:" .. logs[name].port .. "/api/v1/write"
    end

    setup(function()
      local tport = free_port()
      spawn(string.format("%s lua %s/tests/e2e/fixtures/meta_target.lua %d 2", proc.quote(proc.bin), SRC, tport))
      wait_http("http://127.0.0.1:" .. tport .. "/metrics")
      -- receiver name = plan
      local plans = { full = "200", split = "200", off = "200", unavailable = "503", rejected = "400" }
      for name, plan in pairs(plans) do
        local l = { port = free_port(), requests = tmp .. "/meta-req-" .. name, decoded = tmp .. "/meta-dec-" .. name }
        spawn(string.format("%s lua %s/tests/e2e/fixtures/receiver.lua %d %s %s %s", proc.quote(proc.bin), SRC,
          l.port, l.requests, plan, l.decoded))
        logs[name] = l
      end
      pport = free_port()
      start_prometheus(pport, tmp .. "/prom-meta")
      logs.prometheus = { port = pport }
      local q = 'queue_config = { batch_send_deadline = "200ms", min_backoff = "50ms", max_backoff = "200ms" }'
      local file = proc.write(tmp .. "/meta.lua", string.format([[
prometheus.exporter.self "s" {}
prometheus.scrape "t" {
  -- the same target twice: its metadata is sent once
  targets = concat({{ __address__ = "127.0.0.1:%d" }, { __address__ = "localhost:%d" }},
    prometheus.exporter.self.s.targets),
  forward_to = { prometheus.remote_write.out.receiver },
  scrape_interval = "500ms",
  scrape_timeout = "500ms",
}
prometheus.remote_write "out" {
  endpoint = {
    { url = %q, %s, metadata_config = { send_interval = "1s" } },
    { url = %q, %s, metadata_config = { send_interval = "1s", max_samples_per_send = 3 } },
    { url = %q, %s, metadata_config = { send = false, send_interval = "1s" } },
    { url = %q, %s, metadata_config = { send_interval = "1s" } },
    { url = %q, %s, metadata_config = { send_interval = "1s" } },
    { url = %q, %s, metadata_config = { send_interval = "1s" } },
  },
}
]], tport, tport, url("full"), q, url("split"), q, url("off"), q, url("unavailable"), q, url("rejected"), q,
        url("prometheus"), q))
      for _, l in pairs(logs) do -- receivers answer (GET: 404)
        for _ = 1, 100 do
          if l.requests == nil or (proc.http("GET", "http://127.0.0.1:" .. l.port .. "/") or 0) > 0 then
            break
          end
          os.execute("sleep 0.05")
        end
      end
      h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data-meta" })
      -- two full rounds with the target's metadata at the first endpoint
      for _ = 1, 100 do
        local n = 0
        for _, r in ipairs(rounds("full")) do
          if #rw_meta(r.entries) == #RW_META then
            n = n + 1
          end
        end
        if n >= 2 and #rounds("split") >= 3 then
          break
        end
        os.execute("sleep 0.1")
      end
    end)

    teardown(function()
      if h then
        h.kill("TERM")
        h.wait(15)
      end
    end)

    it("sends every scrape target's metadata (type, help, unit) each send_interval, exporters' included", function()
      local full = {}
      for _, r in ipairs(rounds("full")) do
        if #rw_meta(r.entries) == #RW_META then
          full[#full + 1] = r
        end
      end
      assert.is_true(#full >= 2, #full .. " full rounds")
      for _, r in ipairs(full) do
        assert.equals(1, #r.requests) -- under max_samples_per_send (2000): one request
        assert.same(RW_META, rw_meta(r.entries)) -- once each, although two targets gave it
        local found
        for _, e in ipairs(r.entries) do
          if e.name == "prometheus_scrape_targets_gauge" then
            found = e
          end
        end
        assert.same({ type = 2, name = "prometheus_scrape_targets_gauge", unit = "",
          help = "Number of targets this component is configured to scrape." }, found)
      end
      -- metadata requests carry no series, sample requests no metadata, and both the protocol's headers
      local headers = {}
      for _, line in ipairs(requests(logs.full.requests)) do
        headers[line.n] = line
      end
      local samples = 0
      for _, r in ipairs(decoded("full")) do
        if r.series > 0 then
          samples = samples + 1
          assert.equals(0, #r.metadata)
        else
          assert.is_true(#r.metadata > 0)
        end
        local hd = headers[r.n]
        assert.equals("snappy", hd.encoding)
        assert.equals("application/x-protobuf", hd.type)
        assert.equals("0.1.0", hd.version)
        assert.matches("^moonwatch/%d", hd.agent)
      end
      assert.is_true(samples > 0)
      assert.is_true(metric_for("prometheus_remote_storage_metadata_total", url("full")) >= 2 * #RW_META)
      assert.is_true(metric_for("prometheus_remote_storage_metadata_bytes_total", url("full")) > 0)
      assert.equals(0, metric_for("prometheus_remote_storage_metadata_failed_total", url("full")))
    end)

    it("splits a round into requests of at most max_samples_per_send entries", function()
      local complete = 0
      local all = rounds("split")
      for i, r in ipairs(all) do
        if i < #all then -- the last round may be under way
          complete = complete + 1
          for j, req in ipairs(r.requests) do
            if j < #r.requests then
              assert.equals(3, #req.metadata)
            else
              assert.is_true(#req.metadata >= 1 and #req.metadata <= 3)
            end
          end
          for j = 2, #r.entries do
            assert.is_true(r.entries[j - 1].name < r.entries[j].name, "sorted and unique")
          end
          if i > 1 then -- the first round may have come before the target's first scrape
            assert.same(RW_META, rw_meta(r.entries))
          end
          assert.is_true(#r.requests >= 2)
        end
      end
      assert.is_true(complete >= 2, complete .. " complete rounds")
    end)

    it("sends no metadata with send = false", function()
      local reqs = decoded("off")
      assert.is_true(#reqs > 0, "sample requests arrive")
      for _, r in ipairs(reqs) do
        assert.is_true(r.series > 0)
        assert.equals(0, #r.metadata)
      end
      assert.equals(0, metric_for("prometheus_remote_storage_metadata_total", url("off")))
    end)

    it("retries 5xx until the next round, drops what a 4xx rejects, and counts both", function()
      local u, r = url("unavailable"), url("rejected")
      assert.is_true(metric_for("prometheus_remote_storage_metadata_retried_total", u) > 0)
      assert.is_true(metric_for("prometheus_remote_storage_metadata_failed_total", u) > 0)
      assert.equals(0, metric_for("prometheus_remote_storage_metadata_total", u))
      assert.is_true(metric_for("prometheus_remote_storage_metadata_failed_total", r) > 0)
      assert.equals(0, metric_for("prometheus_remote_storage_metadata_retried_total", r))
      -- a rejected request is not resent: the next metadata request is the next round's
      local times = {}
      for _, line in ipairs(requests(logs.rejected.requests)) do
        times[line.n] = line.time
      end
      local prev
      for _, d in ipairs(decoded("rejected")) do
        if #d.metadata > 0 then
          if prev then
            assert.is_true(times[d.n] - prev > 0.5, "metadata requests " .. (times[d.n] - prev) .. "s apart")
          end
          prev = times[d.n]
        end
      end
      assert.truthy(prev)
    end)

    it("is accepted by Prometheus's remote-write receiver", function()
      assert.is_true(metric_for("prometheus_remote_storage_metadata_total", url("prometheus")) >= #RW_META)
      assert.equals(0, metric_for("prometheus_remote_storage_metadata_failed_total", url("prometheus")))
    end)
  end)

  it("adds shards behind a slow receiver, and every series still arrives in order at Prometheus", function()
    local log, plog = tmp .. "/served-slow", tmp .. "/proxy-slow"
    local tport, tpid = start_target(log, 200)
    local pport = free_port()
    start_prometheus(pport, tmp .. "/prom-slow")
    -- 0.25 s per request of at most 50 samples: one shard sends 200 samples/s, the target
    -- makes about 400/s
    local xport = free_port()
    spawn(string.format("%s lua %s/tests/e2e/fixtures/slow_proxy.lua %d http://127.0.0.1:%d/api/v1/write 0.25 %s",
      proc.quote(proc.bin), SRC, xport, pport, plog))
    wait_http("http://127.0.0.1:" .. xport .. "/-/ready")
    local file = pipeline("slow", tport, { "http://127.0.0.1:" .. xport .. "/api/v1/write" }, nil,
      { queue = { max_samples_per_send = "50", min_shards = "1", max_shards = "8" } })
    local h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data-slow" },
      { env = "MOONWATCH_REMOTE_WRITE_SHARD_UPDATE_INTERVAL=1" })
    finally(function()
      h.kill("KILL")
    end)
    local shards, desired = 0, 0
    for _ = 1, 24 do
      os.execute("sleep 0.25")
      shards = math.max(shards, metric(h, "prometheus_remote_storage_shards"))
      desired = math.max(desired, metric(h, "prometheus_remote_storage_shards_desired"))
    end
    os.execute("kill " .. tpid) -- no more samples: the backlog drains
    assert.is_true(shards >= 2, "shards " .. shards)
    assert.is_true(desired > 1, "desired shards " .. desired)
    assert.equals(8, metric(h, "prometheus_remote_storage_shards_max"))
    assert.equals(1, metric(h, "prometheus_remote_storage_shards_min"))
    -- every sample arrives (Prometheus rejects a sample older than its series' newest: 400,
    -- counted as failed and missing)
    assert.equals(0, wait_all(log, function()
      return prometheus_samples(pport)
    end, 20))
    assert.equals(0, metric(h, "prometheus_remote_storage_samples_failed_total"))
    local _, pm = proc.http("GET", "http://127.0.0.1:" .. pport .. "/metrics")
    local ooo = tonumber(pm:match("\nprometheus_tsdb_out_of_order_samples_total{type=\"float\"} (%S+)")
      or pm:match("\nprometheus_tsdb_out_of_order_samples_total (%S+)"))
    assert.equals(0, ooo)
    -- requests were in flight together, and all were accepted
    local most = 0
    for line in io.lines(plog) do
      local status, in_flight = line:match("^%d+ (%d+) (%d+) ")
      assert.equals("200", status == "204" and "200" or status, line)
      most = math.max(most, tonumber(in_flight))
    end
    assert.is_true(most >= 2, "at most " .. most .. " requests in flight")
    h.kill("TERM")
    assert.equals(0, h.wait(15))
  end)

  it("keeps sending while the shard count goes down and up for a minute: every sample once, in order", function()
    local log, plog, slog = tmp .. "/served-reshard", tmp .. "/proxy-reshard", tmp .. "/samples-reshard"
    local tport, tpid = start_target(log, 200)
    local pport = free_port()
    start_prometheus(pport, tmp .. "/prom-reshard")
    -- requests take 0.3-2.7 s for 10 s (a shard sends one span of a batch_send_deadline, ~400
    -- samples, per 1.5 s; the target makes 400 samples/s), then 6-54 ms for 10 s, and so on; the
    -- proxy logs every sample it is sent. Requests are cut by the deadline, not filled: after a new
    -- shard count the reader waits, and the new senders are idle then (the stall of #14).
    local xport = free_port()
    spawn(string.format("%s lua %s/tests/e2e/fixtures/slow_proxy.lua %d http://127.0.0.1:%d/api/v1/write 1.5 %s 10 %s",
      proc.quote(proc.bin), SRC, xport, pport, plog, slog))
    wait_http("http://127.0.0.1:" .. xport .. "/-/ready")
    local file = pipeline("reshard", tport, { "http://127.0.0.1:" .. xport .. "/api/v1/write" }, nil,
      { queue = { batch_send_deadline = '"1s"', min_shards = "1", max_shards = "8" } })
    local h = proc.start_run(file, { "--storage.path=" .. tmp .. "/data-reshard" },
      { env = "MOONWATCH_REMOTE_WRITE_SHARD_UPDATE_INTERVAL=1" })
    finally(function()
      h.kill("KILL")
    end)
    -- 70 s here; `make soak` runs it for SOAK_SECONDS
    local unhealthy = 0
    for _ = 1, tonumber(os.getenv("MOONWATCH_SOAK_SECONDS") or "") or 70 do
      os.execute("sleep 1")
      unhealthy = unhealthy + metric(h, "moonwatch_component_controller_running_components", 'health_type="unhealthy"')
    end
    os.execute("kill " .. tpid) -- no more samples: the backlog drains
    assert.equals(0, wait_all(log, function()
      return prometheus_samples(pport)
    end, 30))
    assert.equals(0, unhealthy)
    -- the shard count went up and down, several times each
    local ups, downs = 0, 0
    for from, to in h.read():gmatch('msg="remote write resharding"[^\n]- from=(%d+) to=(%d+)') do
      if tonumber(to) > tonumber(from) then
        ups = ups + 1
      else
        downs = downs + 1
      end
    end
    assert.is_true(ups >= 3 and downs >= 3, string.format("%d times up, %d down", ups, downs))
    -- every sample the target served was sent exactly once, in order per series
    local want, nwant = served(log)
    local last, sent = {}, 0
    for line in io.lines(slog) do
      local series, ts, v = line:match('^__name__="rw_test",.*series="(%d+)"%S* (%d+) (%S+)$')
      if series then
        ts = tonumber(ts)
        assert.is_true(ts > (last[series] or 0), "series " .. series .. ": " .. ts .. " after " .. (last[series] or 0))
        last[series] = ts
        assert.equals(want[series .. " " .. ts], tonumber(v), line)
        sent = sent + 1
      end
    end
    assert.equals(nwant, sent)
    assert.equals(0, metric(h, "prometheus_remote_storage_samples_failed_total"))
    h.kill("TERM")
    assert.equals(0, h.wait(15))
  end)

  it("drops samples older than sample_age_limit, when read and before a retry, and counts them", function()
    local log = tmp .. "/served-age"
    local tport = start_target(log)
    local dead = free_port()
    local data = tmp .. "/data-age"
    -- a first run against a dead endpoint leaves samples in the WAL
    local h = proc.start_run(pipeline("age", tport, { "http://127.0.0.1:" .. dead .. "/api/v1/write" }),
      { "--storage.path=" .. data })
    os.execute("sleep 2")
    h.kill("KILL")
    h.wait(5)
    local killed_at = math.floor(require("moonwatch.ffi").time_now() * 1000)
    local _, first_run = served(log)
    -- restarted with sample_age_limit: the receiver comes up 2 s later
    local src = io.open(tmp .. "/age.lua"):read("*a"):gsub('max_backoff = "500ms",', 'max_backoff = "200ms",'
      .. ' sample_age_limit = "1s",')
    local h2 = proc.start_run(proc.write(tmp .. "/age2.lua", src), { "--storage.path=" .. data })
    finally(function()
      h2.kill("KILL")
    end)
    assert.is_true(h2.wait_log("replaying the WAL", 5), h2.read())
    os.execute("sleep 2")
    local up_at = math.floor(require("moonwatch.ffi").time_now() * 1000)
    start_prometheus(dead, tmp .. "/prom-age")
    local ready_at = math.floor(require("moonwatch.ffi").time_now() * 1000)
    -- what is scraped once the receiver is up arrives
    assert.equals(0, wait_all(log, function()
      return prometheus_samples(dead)
    end, 15, function(k)
      return tonumber(k:match(" (%d+)$")) > ready_at + 500
    end))
    local prom = prometheus_samples(dead)
    for k in pairs(prom) do
      local ts = tonumber(k:match(" (%d+)$"))
      assert.is_true(ts > killed_at, "a sample of the first run was sent: " .. k)
      assert.is_true(ts >= up_at - 1000 - 50, "sent " .. (up_at - ts) .. " ms old: " .. k)
    end
    assert.is_true(metric(h2, "prometheus_remote_storage_samples_dropped_total", 'reason="too_old"')
      >= first_run - 5 * 2)
    assert.equals(0, metric(h2, "prometheus_remote_storage_samples_failed_total"))
    h2.kill("TERM")
    assert.equals(0, h2.wait(15))
  end)
end)
