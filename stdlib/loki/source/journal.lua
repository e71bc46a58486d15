--- loki.source.journal: reads the systemd journal (libsystemd's sd-journal) and forwards
--- its entries as log entries, as Alloy's. Everything per entry happens in C
--- (runtime/journal/): every field becomes a __journal_<field lowercased> label (and
--- __journal_priority_keyword), the constant `labels` are added, `relabel_rules` run, then
--- the labels starting with "__" are dropped (an entry left without labels is dropped); the
--- line is MESSAGE, or every field as a JSON object with format_as_json; the timestamp is
--- the entry's realtime timestamp.
--- The cursor of the last entry sent is kept in <storage.path>/<component id>/positions.yml
--- (Alloy's layout), saved at most once a second and on stop: a restart resumes after it
--- (entries sent after the last save are sent again, none is lost). Without a cursor (or
--- with one older than max_age), reading starts at now - max_age.
local logs = require("moonwatch.batch.logs")
local receiver = require("moonwatch.receiver")
local journal = require("moonwatch.native.journal")
local metrics = require("moonwatch.metrics")
local relabel = require("moonwatch.relabel")
local fs = require("moonwatch.fs")
local scheduler = require("moonwatch.scheduler")
local ffi_rt = require("moonwatch.ffi")

local Instance = {}
Instance.__index = Instance

local RULES = {}
for k, v in pairs(relabel.RULE) do
  RULES[k] = v
end
RULES.doc = "Relabeling rules applied to each entry's labels (e.g. loki.relabel.x.rules); the __journal_* "
  .. "labels are available to them. C rules only (no Lua function)."

local M = {
  name = "loki.source.journal",
  doc = "Reads entries from the systemd journal and forwards them as log entries.",
  args = {
    format_as_json = { type = "bool", default = false,
      doc = "Write every field of the entry as a JSON object instead of only MESSAGE." },
    max_age = { type = "duration", default = "7h",
      doc = "The oldest entry to read on a first start (or when the saved cursor is older)." },
    path = { type = "string", default = "",
      doc = "A directory of journal files to read; empty: the system's journal." },
    matches = { type = "string", default = "",
      doc = "Journal matches, \"FIELD=value\" separated by spaces (fields ANDed, values of a field ORed)." },
    relabel_rules = RULES,
    labels = { type = "map", of = { type = "string" }, default = {}, doc = "Labels added to every entry." },
    forward_to = { type = "log_receivers", required = true, doc = "Where to send the entries." },
    legacy_position = { type = "block", optional = true,
      doc = "A legacy (Grafana Agent static mode or promtail) positions file whose journal cursor is taken "
        .. "when this component has no positions file yet.",
      schema = { args = {
        file = { type = "string", required = true, doc = "The legacy positions file." },
        name = { type = "string", required = true, doc = "The journal job's name in it (its key cursor-<name>)." },
      } } },
  },
  exports = {},
}

--- Entries read per batch, and bytes of lines.
M.BATCH_ENTRIES = 4096
M.BATCH_BYTES = 4 * 1024 * 1024
--- Seconds between two saves of the cursor, and the longest wait without a journal event.
M.SAVE_EVERY = 1
M.WAIT = 1

local family
local function component_metrics()
  if not family then
    local reg = metrics.default
    family = {
      errors = reg:counter("loki_source_journal_target_parsing_errors_total",
        "Total number of parsing errors while reading journal messages", { "component_id", "error" }),
      lines = reg:counter("loki_source_journal_target_lines_total",
        "Total number of successful journal lines read", { "component_id" }),
    }
  end
  return family
end

-- Alloy's matches: "FIELD=value" words, each with exactly one "=".
local function parse_matches(s)
  local out = {}
  for word in s:gmatch("%S+") do
    local f = word:match("^([^=]*)=[^=]*$")
    if not f or f == "" then
      return nil, string.format("matches: %q is not FIELD=value", word)
    end
    out[#out + 1] = word
  end
  return out
end

function M.validate(args)
  local _, err = parse_matches(args.matches)
  if err then
    return err
  end
  for name in pairs(args.labels) do
    if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
      return string.format("labels: %q is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)", tostring(name))
    end
  end
  local _, rerr = M.program(args.relabel_rules)
  return rerr
end

--- The C program of relabel_rules (nil when there are none), or nil, err.
function M.program(rules)
  local segs, err = relabel.pipeline(rules)
  if not segs then
    return nil, "relabel_rules: " .. err
  end
  if not relabel.is_native(segs) then
    return nil, "relabel_rules: Lua function rules are not supported here (only rule blocks); "
      .. "relabel with loki.relabel after the source instead"
  end
  return segs[1] and segs[1].program or nil
end

-- positions.yml as Alloy writes it (yaml.v2: a map keyed by { path, labels }).
local function positions_path(ctx)
  return ctx.storage_path .. "/positions.yml"
end

local function read_cursor(path, key)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local s = f:read("*a")
  f:close()
  local found
  for line in s:gmatch("[^\n]+") do
    if found then
      local v = line:match("^%s*:%s*(.-)%s*$")
      if v then
        return (v:gsub("^\"(.*)\"$", "%1"):gsub("^'(.*)'$", "%1"))
      end
    end
    found = found or line:match("path:%s*(%S+)") == key
  end
  return nil
end

local function write_cursor(path, key, cursor)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then
    return nil, err
  end
  local ok, werr = f:write(string.format("positions:\n  ? path: %s\n    labels: '{}'\n  : %s\n", key, cursor))
  f:close()
  if not ok then
    return nil, werr
  end
  return os.rename(tmp, path)
end

-- The cursor of job name in a legacy positions file (positions: {cursor-<name>: "..."}), as
-- Alloy converts it: nil when the file is missing, empty, malformed or has none; an error when
-- it exists and cannot be read (Alloy refuses to start then, not to read logs again).
local function legacy_cursor(file, name, log)
  local f, err, code = io.open(file, "rb")
  if not f then
    if code == 2 then -- ENOENT
      log:info("no legacy positions file found", { path = file })
      return nil
    end
    return nil, string.format("legacy positions file %q exists but could not be read, refusing to start to "
      .. "avoid re-ingesting logs: %s", file, tostring(err))
  end
  local text = f:read("*a")
  f:close()
  if not text then
    return nil, string.format("legacy positions file %q could not be read", file)
  end
  local want, in_positions = "cursor-" .. name, false
  for line in text:gmatch("[^\n]+") do
    if line:find("^positions:%s*$") then
      in_positions = true
    elseif in_positions then
      local k, v = line:match("^%s+(.-):%s+(.-)%s*$")
      if k then
        k = k:gsub('^"(.*)"$', "%1"):gsub("^'(.*)'$", "%1")
        if k == want then
          return (v:gsub('^"(.*)"$', "%1"):gsub("^'(.*)'$", "%1"))
        end
      end
    end
  end
  log:info("will not convert the legacy positions file: no cursor of this job in it", { path = file, name = name })
  return nil
end

function M.new(ctx, args)
  local f = component_metrics()
  local self = setmetatable({
    ctx = ctx,
    key = "cursor-" .. ctx.id,
    fanout = receiver.fanout(ctx),
    batch = logs.new(),
    m = {
      lines = f.lines:with(ctx.id),
      no_message = f.errors:with(ctx.id, "no_message"),
      empty_labels = f.errors:with(ctx.id, "empty_labels"),
    },
    read = 0,
  }, Instance)
  local ok, err = fs.mkdir_p(ctx.storage_path)
  if not ok then
    error("storage: " .. err, 0)
  end
  self.pos_file = positions_path(ctx)
  local lp = args.legacy_position
  local st = io.open(self.pos_file, "rb")
  local fresh = not st or st:seek("end") == 0
  if st then
    st:close()
  end
  if lp and fresh then
    local cursor, lerr = legacy_cursor(lp.file, lp.name, ctx.log)
    if lerr then
      error(lerr, 0)
    elseif cursor then
      local written, werr = write_cursor(self.pos_file, self.key, cursor)
      if not written then
        ctx.log:error("error writing new positions file converted from legacy", { path = self.pos_file, err = werr })
      else
        ctx.log:info("converted the legacy positions file", { path = self.pos_file, legacy_path = lp.file })
      end
    end
  end
  self.cursor = read_cursor(self.pos_file, self.key)
  local fh = not self.cursor and io.open(self.pos_file)
  if fh then
    fh:close()
    ctx.log:warn("positions file has no cursor of this component: reading from max_age ago",
      { path = self.pos_file })
  end
  self.saved = self.cursor
  ctx:timer(M.SAVE_EVERY, M.SAVE_EVERY, function()
    self:save()
  end, "positions")
  ctx:on_stop(function()
    self:stop_tailer()
    self:save()
  end)
  self:update(args)
  return self
end

function Instance:save()
  if self.cursor and self.cursor ~= self.saved then
    local ok, err = write_cursor(self.pos_file, self.key, self.cursor)
    if ok then
      self.saved, self.saved_at = self.cursor, ffi_rt.monotonic()
    else
      self.ctx.log:error("error writing positions file", { path = self.pos_file, err = err })
    end
  end
end

function Instance:stop_tailer()
  if self.task then
    scheduler.cancel(self.task)
    self.task = nil
  end
  if self.reader then
    self.reader:close()
    self.reader = nil
  end
end

-- Alloy recreates its tailer on every update; so does this (the reader resumes at the cursor).
function Instance:update(args)
  self.args = args
  self:stop_tailer()
  local program, perr = M.program(args.relabel_rules) -- rules read from an export: checked again here
  if perr then
    error(perr, 0)
  end
  local r, err = journal.open(args.path ~= "" and args.path or nil, assert(parse_matches(args.matches)))
  if r then
    local _, lerr = r:set_labels(args.labels)
    if lerr then
      r:close()
      r, err = nil, "labels: " .. lerr
    end
  end
  local from
  if r then
    r:configure(program, args.format_as_json)
    from, err = r:seek(self.cursor, args.max_age)
    if not from then
      r:close()
      r = nil
    end
  end
  if not r then
    self.ctx.log:error("error creating journal tailer", { err = err, path = args.path })
    self.ctx:set_health("unhealthy", "error creating journal tailer: " .. err)
    return
  end
  if from == "max_age" and self.cursor then
    self.ctx.log:warn("saved journal cursor not used (its entry is older than max_age, or gone, or the cursor "
      .. "is not valid): reading from max_age ago", { cursor = self.cursor, max_age = args.max_age })
  end
  self.reader, self.from = r, from
  self.ctx:set_health("healthy", "journal tailer is running")
  self.task = self.ctx:spawn(function()
    self:tail(r)
  end, "tail")
end

function Instance:tail(r)
  local b, m = self.batch, self.m
  while r.h do -- closed: an update replaced this reader
    local n, at_end, st = r:read(b, M.BATCH_ENTRIES, M.BATCH_BYTES)
    if not n then
      self.ctx:set_health("unhealthy", "reading the journal: " .. at_end)
      self.ctx.log:error("unable to follow journal", { err = at_end })
      self.failing = true
      self.ctx:sleep(M.WAIT)
    else
      if self.failing then -- reading again: healthy again
        self.failing = false
        self.ctx:set_health("healthy", "journal tailer is running")
      end
      if n > 0 then
        self.read = self.read + n
        m.lines:add(tonumber(st.lines))
        m.no_message:add(tonumber(st.no_message))
        m.empty_labels:add(tonumber(st.empty_labels))
        if logs.len(b) > 0 then
          self.fanout:send(self.args.forward_to, b)
        end
        self.cursor = r:cursor() or self.cursor
        if not self.saved_at or ffi_rt.monotonic() - self.saved_at >= M.SAVE_EVERY then
          self:save()
        end
      end
      if at_end then
        r:wait(M.WAIT)
      else
        self.ctx:sleep(0) -- let the loop breathe between full batches
      end
    end
  end
end

function Instance:debug_info()
  return { path = self.args.path ~= "" and self.args.path or "(system journal)", cursor = self.cursor,
    entries_read = self.read, started_from = self.from }
end

return M
