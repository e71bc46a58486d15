--- loki.source.file: tails files and forwards their lines as log entries, as Alloy's
--- loki.source.file. The reading is C (runtime/tail/, through moonwatch.native.tail): one
--- call fills a whole batch; the stream of a line is its target's labels without the __
--- ones, plus filename (the file's path). Positions are kept in
--- <storage.path>/loki.source.file.<label>/positions.yml (Alloy's format), saved every
--- second and at stop: a restart reads on from there (after kill -9: the lines of the last
--- second again at most). Files are watched with inotify (and all checked once a second
--- in case an event was missed), polled (file_watch) otherwise or when
--- MOONWATCH_FILE_WATCH=poll. A plain __path__ is read as it is (relative to the working
--- directory); with the file_match block it is a glob whose files get absolute paths, as
--- local.file_match's (moonwatch.file_match: a glob that reaches its bound is reported).
local logs = require("moonwatch.batch.logs")
local file_match = require("moonwatch.file_match")
local fs = require("moonwatch.fs")
local metrics = require("moonwatch.metrics")
local receiver = require("moonwatch.receiver")
local scheduler = require("moonwatch.scheduler")
local tail = require("moonwatch.native.tail")
local monotonic = require("moonwatch.ffi").monotonic -- not the loop's cached time: a backlog runs in one turn

local Instance = {}
Instance.__index = Instance

-- Entries and bytes of one batch handed to forward_to.
local BATCH_ENTRIES, BATCH_BYTES = 8192, 1024 * 1024
-- Seconds a backlog is read before the loop gets a turn; between inotify safety checks.
local SLICE, SAFETY_CHECK = 0.02, 1
-- Seconds inotify events are gathered before the files they name are read.
local COALESCE = 0.005
-- Seconds between two saves of the positions file (when changed) and metric updates.
local SAVE_EVERY = 1

local M = {
  name = "loki.source.file",
  doc = "Reads log entries from files and forwards them to other loki.* components.",
  args = {
    targets = { type = "targets", required = true, doc = "List of files to read from (__path__)." },
    forward_to = { type = "log_receivers", required = true, doc = "List of receivers to send log entries to." },
    encoding = { type = "string", default = "", doc = "The encoding to convert from when reading files (IANA name; \"\": UTF-8).",
      check = function(v)
        local ok, err = tail.check_encoding(v)
        if not ok then
          return nil, err
        end
      end },
    tail_from_end = { type = "bool", default = false, doc = "Whether to tail from the end if a stored position isn't found." },
    on_positions_file_error = { type = "string", default = "restart_from_beginning",
      enum = { "skip", "restart_from_end", "restart_from_beginning" },
      doc = "What a file whose entry of the positions file is corrupt does: restart_from_beginning (from its end "
        .. "with tail_from_end, as Alloy's); restart_from_end with tail_from_end only (the same then); skip is "
        .. "refused (not supported)." },
    legacy_positions_file = { type = "string", default = "",
      doc = "A promtail positions file converted when this component has none yet." },
    decompression = { type = "block", default = {}, doc = "Reads whole compressed files (read once, not followed).",
      schema = { args = {
      enabled = { type = "bool", default = false, doc = "Whether decompression is enabled." },
      initial_delay = { type = "duration", default = "0s", min = 0, doc = "Time to wait before reading a file." },
      format = { type = "string", enum = { "gz", "z", "bz2" },
        doc = "Compression format: gz, z or bz2 (required when enabled)." },
    } } },
    file_watch = { type = "block", default = {}, doc = "How files are polled when inotify is not used.", schema = { args = {
      min_poll_frequency = { type = "duration", default = "250ms", positive = true, doc = "Minimum time between polls." },
      max_poll_frequency = { type = "duration", default = "250ms", positive = true, doc = "Maximum time between polls." },
    } } },
    file_match = { type = "block", default = {}, doc = "Built-in discovery: __path__ of targets are globs.", schema = { args = {
      enabled = { type = "bool", default = false, doc = "Expand __path__ as a doublestar glob." },
      sync_period = { type = "duration", default = "10s", positive = true, doc = "How often the globs are expanded." },
      ignore_older_than = { type = "duration", default = "0s", min = 0, doc = "Leaves out files older than this (0: none)." },
    } } },
    max_line_size = { type = "uint", default = 256 * 1024, min = 1, max = 64 * 1024 * 1024,
      doc = "Lines longer than this many bytes are cut to it, counted (moonwatch; Loki refuses lines over 256 KiB by default)." },
    max_open_files = { type = "uint", default = 1024, min = 1,
      doc = "Files open at once at most; more wait, and the component is unhealthy meanwhile (moonwatch)." },
  },
}

function M.validate(args)
  local d = args.decompression
  if d and d.enabled and not d.format then
    return "decompression: format is required (gz, z or bz2)"
  end
  -- a corrupt position entry is left out when the positions file is read: the file then
  -- starts as one without a position, which is Alloy's restart_from_beginning
  local ope = args.on_positions_file_error
  if ope == "skip" then
    return 'on_positions_file_error: "skip" is not supported by moonwatch (a file whose position entry is '
      .. 'corrupt is read from its beginning, or from its end with tail_from_end)'
  elseif ope == "restart_from_end" and d and d.enabled then
    return 'on_positions_file_error: "restart_from_end" is not supported when decompression is enabled'
  elseif ope == "restart_from_end" and not args.tail_from_end then
    return 'on_positions_file_error: "restart_from_end" is supported by moonwatch with tail_from_end = true '
      .. "only (a file whose position entry is corrupt starts where one without a position starts)"
  end
  local fw = args.file_watch
  if fw and fw.min_poll_frequency > fw.max_poll_frequency then
    return "file_watch: min_poll_frequency must not be greater than max_poll_frequency"
  end
  return nil
end

local fam
local function families()
  if not fam then
    local reg = metrics.default
    fam = {
      read_bytes = reg:gauge("loki_source_file_read_bytes_total", "Number of bytes read.", { "component_id", "path" }),
      file_bytes = reg:gauge("loki_source_file_file_bytes_total", "Number of bytes total.", { "component_id", "path" }),
      read_lines = reg:counter("loki_source_file_read_lines_total", "Number of lines read.", { "component_id", "path" }),
      active = reg:gauge("loki_source_file_files_active_total", "Number of active files.", { "component_id" }),
      truncated = reg:counter("loki_source_file_lines_truncated_total",
        "Lines cut to max_line_size (moonwatch).", { "component_id" }),
      encoding = reg:counter("loki_source_file_encoding_failures_total",
        "Bytes that were not valid in the file's encoding, replaced by U+FFFD (moonwatch).", { "component_id" }),
      decompress = reg:counter("loki_source_file_decompression_failures_total",
        "Compressed files that failed to decompress (moonwatch).", { "component_id" }),
      capped = file_match.capped_gauge(),
    }
  end
  return fam
end

-- What makes a new tailer (the rest is updated in place).
local function tailer_key(args)
  local d = args.decompression or {}
  return table.concat({ args.encoding, tostring(args.tail_from_end), args.legacy_positions_file,
    tostring(d.enabled and d.format or ""), tostring(d.initial_delay), tostring(args.max_line_size),
    tostring(args.max_open_files) }, "\0")
end

function M.new(ctx, args)
  local self = setmetatable({ ctx = ctx, fanout = receiver.fanout(ctx), batch = logs.new(), m = families(),
    seen = {}, counted = {}, sent = 0 }, Instance)
  -- MOONWATCH_FILE_WATCH=poll: polling only; =inotify: inotify events only, without the
  -- periodic safety check (for tests: a missed event then shows)
  local mode = os.getenv("MOONWATCH_FILE_WATCH")
  self.poll, self.events_only = mode == "poll", mode == "inotify"
  self:update(args)
  return self
end

function Instance:open_tailer(args)
  local ok, err = fs.mkdir_p(self.ctx.storage_path)
  if not ok then
    error("storage: " .. err, 0)
  end
  local d = args.decompression or {}
  local t
  t, err = tail.new({
    positions = self.ctx.storage_path .. "/positions.yml",
    legacy_positions = args.legacy_positions_file,
    encoding = args.encoding,
    tail_from_end = args.tail_from_end,
    poll = self.poll,
    decompress = d.enabled and d.format or nil,
    initial_delay = d.initial_delay,
    max_line_size = args.max_line_size,
    max_open_files = args.max_open_files,
  })
  if not t then
    error(err, 0)
  end
  return t
end

function Instance:update(args)
  local key = tailer_key(args)
  if key ~= self.key then
    if self.tailer then -- the new tailer starts from the old one's positions
      self.tailer:save(true)
    end
    local t = self:open_tailer(args)
    self:close_tailer()
    self.tailer, self.key = t, key
    t:watch(function()
      -- events are gathered for COALESCE seconds before a read: a busy writer's many
      -- small writes make one read, not one wake-up each
      if not self.coalescing then
        self.coalescing = true
        t:pause()
        self.ctx:timer(COALESCE, nil, function()
          self.coalescing = false
          if self.tailer == t then
            t:resume()
            self:poke()
          end
        end, self.ctx.id .. " events")
      end
    end)
  end
  self.args = args
  self:sync()
  self:arm()
  self:poke()
end

-- The files of the targets: __path__ as is, or its glob's files (file_match block).
function Instance:sync()
  local args = self.args
  local files, seen = {}, {}
  local fm = args.file_match
  local min_mtime = 0
  if fm.enabled and fm.ignore_older_than > 0 then
    min_mtime = os.time() - fm.ignore_older_than
  end
  local problems, capped = {}, 0
  for _, t in ipairs(args.targets) do
    local path = t.__path__
    if type(path) == "string" and path ~= "" then
      local key = {}
      for k, v in pairs(t) do
        if k:sub(1, 2) ~= "__" then
          key[k] = v
        end
      end
      local paths = { path } -- as Alloy: a plain __path__ as it is, relative or not
      if fm.enabled then
        local err, full
        paths, err, full = file_match.expand(path, t.__path_exclude__, min_mtime)
        if not paths then
          problems[#problems + 1] = err
          paths = {}
        elseif full then
          capped = capped + 1
          problems[#problems + 1] = file_match.capped_message(path)
        end
      end
      for _, p in ipairs(paths) do
        local labels = {}
        for k, v in pairs(key) do
          labels[k] = v
        end
        labels.filename = p
        local _, id = tail.encode(labels)
        if not seen[id] then -- targets with the same path and labels are read once
          seen[id] = true
          files[#files + 1] = { path = p, labels = labels, key = key }
        end
      end
    end
  end
  local ok, err = self.tailer:set(files)
  if not ok then
    problems[#problems + 1] = err
  end
  if fm.enabled then
    self.m.capped:with(self.ctx.id):set(capped)
  else
    self.m.capped:remove(self.ctx.id)
  end
  self.problems = problems
  self:health()
end

-- The health: the targets' problems, a failed save of the positions, and files that wait
-- for max_open_files (they are not read until an open file goes away).
function Instance:health()
  local msgs = {}
  for _, p in ipairs(self.problems or {}) do
    msgs[#msgs + 1] = p
  end
  if self.save_err then
    msgs[#msgs + 1] = self.save_err
  end
  if (self.files_waiting or 0) > 0 then
    msgs[#msgs + 1] = string.format("%d files are not read: they wait for one of the max_open_files (%d) to close",
      self.files_waiting, self.args.max_open_files)
  end
  self.ctx:set_health(#msgs > 0 and "unhealthy" or "healthy", table.concat(msgs, "; ")) -- kept when the same
end

function Instance:arm()
  local fw = self.args.file_watch
  local every = self.tailer:inotify() and SAFETY_CHECK or fw.min_poll_frequency
  if self.check_timer and self.check_every ~= every then
    self.check_timer:close()
    self.check_timer = nil
  end
  if not self.check_timer and not (self.events_only and self.tailer:inotify()) then
    self.check_every = every
    self.check_timer = self.ctx:timer(every, every, function()
      self:tick()
    end, self.ctx.id .. " poll")
  end
  if not self.save_timer then
    self.save_timer = self.ctx:timer(SAVE_EVERY, SAVE_EVERY, function()
      self:save(false)
    end, self.ctx.id .. " positions")
  end
  local fm = self.args.file_match
  if self.match_timer and (not fm.enabled or self.match_every ~= fm.sync_period) then
    self.match_timer:close()
    self.match_timer = nil
  end
  if fm.enabled and not self.match_timer then
    self.match_every = fm.sync_period
    self.match_timer = self.ctx:timer(fm.sync_period, fm.sync_period, function()
      self:sync()
      self:poke()
    end, self.ctx.id .. " file_match")
  end
end

-- A poll tick: every file is checked. Polling backs off from min_poll_frequency to
-- max_poll_frequency while nothing is read (as Alloy's file_watch).
function Instance:tick()
  if not self.tailer then
    return
  end
  local fw = self.args.file_watch
  if self.skip and self.skip > 0 then
    self.skip = self.skip - 1
    return
  end
  self.tailer:check_all()
  self:poke()
  if not self.tailer:inotify() then
    if self.sent_at_tick == self.sent then
      self.idle = math.min((self.idle or 0) + 1, math.floor(fw.max_poll_frequency / fw.min_poll_frequency) - 1)
    else
      self.idle = 0
    end
    self.skip, self.sent_at_tick = self.idle, self.sent
  end
end

-- Wakes the reading task.
function Instance:poke()
  if self.waiting and self.task then
    self.waiting = false
    scheduler.wake(self.task)
  else
    self.pending = true
  end
end

function Instance:run()
  self.task = scheduler.current()
  local slice_start = monotonic()
  while true do
    local t = self.tailer
    self.pending = false
    local more = t and t:read(self.batch, BATCH_ENTRIES, BATCH_BYTES)
    local n = logs.len(self.batch)
    if n > 0 then
      self.sent = self.sent + n
      self.fanout:send(self.args.forward_to, self.batch)
    end
    if more or self.pending then
      if monotonic() - slice_start > SLICE then
        self.ctx:sleep(0)
        slice_start = monotonic()
      end
    else
      self.waiting = true
      scheduler.suspend()
      slice_start = monotonic()
    end
  end
end

-- Saves the positions (when changed, or always with force) and refreshes the metrics.
function Instance:save(force)
  local t = self.tailer
  if not t then
    return
  end
  local ok, err = t:save(force)
  self.save_err = not ok and err or nil
  local m, id = self.m, self.ctx.id
  local now = {}
  local waiting = 0
  self.errors = self.errors or {}
  for _, f in ipairs(t:files()) do
    now[f.path] = true
    if f.state == "waiting" then
      waiting = waiting + 1
    end
    if f.error ~= (self.errors[f.path] or "") then -- a file that cannot be read: said once
      if f.error ~= "" then
        self.ctx.log:warn("cannot read file", { path = f.path, err = f.error })
      end
      self.errors[f.path] = f.error ~= "" and f.error or nil
    end
    m.read_bytes:with(id, f.path):set(f.position)
    m.file_bytes:with(id, f.path):set(f.size)
    local prev = self.counted[f.path] or 0
    if f.read_lines > prev then
      m.read_lines:with(id, f.path):add(f.read_lines - prev)
    end
    self.counted[f.path] = f.read_lines
  end
  for p in pairs(self.counted) do
    if not now[p] then
      m.read_bytes:remove(id, p)
      m.file_bytes:remove(id, p)
      m.read_lines:remove(id, p)
      self.counted[p] = nil
      self.errors[p] = nil
    end
  end
  self.files_waiting = waiting
  self:health()
  local s = t:stats()
  m.active:with(id):set(s.active)
  for name, v in pairs({ truncated = s.lines_truncated, encoding = s.encoding_errors, decompress = s.decompress_errors }) do
    local prev = self.seen[name] or 0
    if v > prev then
      m[name]:with(id):add(v - prev)
    end
    self.seen[name] = v
  end
end

function Instance:close_tailer()
  if self.tailer then
    self:save(true)
    self.tailer:close()
    self.tailer = nil
    self.seen, self.counted = {}, {}
  end
end

function Instance:stop()
  self:close_tailer()
  self.m.capped:remove(self.ctx.id)
end

function Instance:debug_info()
  local info = { targets_info = {} }
  if self.tailer then
    for _, f in ipairs(self.tailer:files()) do
      info.targets_info[#info.targets_info + 1] = {
        path = f.path, is_running = f.state == "active", read_offset = f.position, size = f.size,
        state = f.state, error = f.error ~= "" and f.error or nil, read_lines = f.read_lines,
      }
    end
    local s = self.tailer:stats()
    info.watch = self.tailer:inotify() and "inotify" or "poll"
    info.rotations, info.truncations, info.lines_truncated = s.rotations, s.truncations, s.lines_truncated
  end
  return info
end

return M
