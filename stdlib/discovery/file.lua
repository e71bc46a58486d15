--- discovery.file: targets from file_sd files (JSON or YAML lists of
--- `{targets = [...], labels = {...}}` groups), as Alloy's discovery.file (Prometheus's file
--- SD). The directories of the `files` globs are watched with inotify, so a changed file is
--- read again at once; every refresh_interval all files are read again anyway. Each target gets
--- the labels of its group, __address__ and __meta_filepath (the file's path). A file that
--- fails to read or parse keeps the targets it had at its last good read: the component then
--- reports unhealthy, naming the file and the line and column at fault, and counts
--- prometheus_sd_file_read_errors_total. A file that no longer matches (deleted) takes its
--- targets away. Bounds: 16 MiB per file, 100000 targets per component.
local filesd = require("moonwatch.native.filesd")
local tail = require("moonwatch.native.tail")
local targetgroup = require("moonwatch.targetgroup")
local metrics = require("moonwatch.metrics")

local Instance = {}
Instance.__index = Instance

local M = {
  name = "discovery.file",
  doc = "Discovers targets from a set of files (Prometheus file_sd: JSON or YAML target groups).",
  args = {
    files = { type = "list", of = { type = "string" }, required = true,
      doc = "Files to read targets from: paths or globs (* in the last path element only), ending in .json, .yml or .yaml." },
    refresh_interval = { type = "duration", default = "5m", positive = true,
      doc = "How often to read the files again (changes are also picked up at once through inotify)." },
  },
  exports = {
    targets = { type = "targets", doc = "The targets of every group of every file, with __meta_filepath." },
  },
}

M.MAX_FILE_BYTES = 16 * 1024 * 1024
M.MAX_TARGETS = 100000

-- Prometheus's file SD pattern rule (config validation).
local function valid_pattern(p)
  local ext = p:match("%.(%a+)$")
  if not ext or not ({ json = true, yml = true, yaml = true, JSON = true, YML = true, YAML = true })[ext] then
    return false
  end
  local star = p:find("*", 1, true)
  if not star then
    return true
  end
  -- one * at most, and nothing after it may be a directory separator
  return not p:find("*", star + 1, true) and not p:find("/", star + 1, true)
end

function M.validate(args)
  for i, p in ipairs(args.files or {}) do
    if not valid_pattern(p) then
      return string.format("files[%d]: path name %q is not valid for file discovery", i, p)
    end
  end
end

local fam
local function families()
  if not fam then
    local reg = metrics.default
    fam = {
      read_errors = reg:counter("prometheus_sd_file_read_errors_total",
        "The number of File-SD read errors.", { "component_id" }),
      watcher_errors = reg:counter("prometheus_sd_file_watcher_errors_total",
        "The number of File-SD errors caused by filesystem watch failures.", { "component_id" }),
      mtime = reg:gauge("prometheus_sd_file_mtime_seconds",
        "Timestamp (mtime) of files read by FileSD. Timestamp is set at read time.", { "component_id", "filename" }),
    }
  end
  return fam
end

local function dirname(p)
  return p:match("^(.*)/[^/]*$") or "."
end

function M.new(ctx, args)
  local self = setmetatable({ ctx = ctx, args = args, m = families(), files = {}, nread = 0 }, Instance)
  local w, err = filesd.watch(function(paths)
    -- only a change to a file the globs match, or to a watched directory itself (moved,
    -- deleted, overflow): a log file written beside them must not cause a refresh
    for _, p in ipairs(paths) do
      if self:concerns(p) then
        return self:schedule()
      end
    end
  end)
  if w then
    self.watch = w
    ctx:on_stop(function()
      w:close()
    end)
  else
    self.m.watcher_errors:with(ctx.id):inc()
    ctx.log:warn("inotify unavailable: files are read every refresh_interval only", { err = err })
  end
  ctx:on_stop(function()
    for path in pairs(self.files) do
      self.m.mtime:remove(ctx.id, path)
    end
  end)
  self:refresh()
  return self
end

-- Reads the files every refresh_interval (inotify events refresh in between).
function Instance:run()
  while true do
    self.ctx:sleep(self.args.refresh_interval)
    self:refresh()
  end
end

function Instance:update(args)
  self.args = args
  self:refresh()
end

-- Whether a changed path may change the targets.
function Instance:concerns(path)
  path = path:gsub("^%./", "")
  if path == "" or self.files[path] then
    return true
  end
  for _, pattern in ipairs(self.args.files) do
    if dirname(pattern) == path or tail.match(pattern, path) then
      return true
    end
  end
  return false
end

-- Coalesces a burst of inotify events (an editor's write, rename, chmod) into one refresh.
function Instance:schedule()
  if not self.pending then
    self.pending = self.ctx:timer(0.05, 0, function()
      self.pending = nil
      self:refresh()
    end, self.ctx.id .. " inotify")
  end
end

-- Reads one file: its targets, or nil and an error naming the position.
local function read(path)
  local f, err = io.open(path, "rb")
  if not f then
    return nil, err
  end
  local size = f:seek("end")
  if size and size > M.MAX_FILE_BYTES then
    f:close()
    return nil, string.format("file larger than %d bytes", M.MAX_FILE_BYTES)
  end
  f:seek("set")
  local text = f:read("*a") or ""
  f:close()
  local doc, derr
  local yaml = path:lower():match("%.ya?ml$")
  if yaml then
    local json
    json, derr = filesd.yaml_to_json(text, 4 * M.MAX_FILE_BYTES)
    if json then
      doc, derr = targetgroup.decode_json(json)
    end
  else
    doc, derr = targetgroup.decode_json(text)
  end
  if derr then
    return nil, derr
  end
  return targetgroup.targets(doc, { __meta_filepath = path }, M.MAX_TARGETS)
end

-- Expands the globs, reads every file, keeps the last good targets of a file that fails,
-- exports the targets.
function Instance:refresh()
  local ctx, m = self.ctx, self.m
  local matched, order, problems = {}, {}, {}
  for _, pattern in ipairs(self.args.files) do
    if self.watch then
      local dir = dirname(pattern)
      local ok, err = self.watch:add(dir)
      if not ok and not self.watch_failed then
        m.watcher_errors:with(ctx.id):inc()
        ctx.log:warn("cannot watch directory", { err = err })
      end
      self.watch_failed = not ok
    end
    local paths = tail.glob(pattern, nil, 0) or {}
    for _, p in ipairs(paths) do
      if not matched[p] then
        matched[p] = true
        order[#order + 1] = p
      end
    end
  end
  table.sort(order)
  for path in pairs(self.files) do
    if not matched[path] then
      self.files[path] = nil
      m.mtime:remove(ctx.id, path)
    end
  end
  local out, total, found = {}, 0, 0
  for _, path in ipairs(order) do
    local targets, err = read(path)
    local st = self.files[path]
    if targets then
      st = { targets = targets }
      self.files[path] = st
      local mt = filesd.mtime(path)
      if mt then
        m.mtime:with(ctx.id, path):set(mt)
      end
    else
      m.read_errors:with(ctx.id):inc()
      problems[#problems + 1] = string.format("%s: %s", path, err)
      ctx.log:error("Error reading file", { path = path, err = err })
      st = st or { targets = {} }
      st.err = err
      self.files[path] = st
    end
    found = found + #st.targets
    for _, t in ipairs(st.targets) do
      if total < M.MAX_TARGETS then
        total = total + 1
        out[total] = t
      end
    end
  end
  self.nread, self.ntargets = #order, total
  local read_failed = #problems > 0
  if found > total then
    local msg = string.format("the files hold %d targets, more than %d: the rest are left out", found, M.MAX_TARGETS)
    problems[#problems + 1] = msg
    ctx.log:error("Too many targets", { targets = found, limit = M.MAX_TARGETS })
  end
  if #problems > 0 then
    ctx:set_health("unhealthy", table.concat(problems, "; ")
      .. (read_failed and " (the last good targets of these files are kept)" or ""))
  else
    ctx:set_health("healthy", "")
  end
  ctx:export({ targets = out })
end

function Instance:debug_info()
  local files = {}
  for path, st in pairs(self.files) do
    files[#files + 1] = { path = path, targets = #st.targets, error = st.err }
  end
  table.sort(files, function(a, b)
    return a.path < b.path
  end)
  return { files = files, targets = self.ntargets, inotify = self.watch ~= nil }
end

return M
