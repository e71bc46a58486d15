--- local.file_match: finds files on the local disk with doublestar globs, as Alloy's
--- local.file_match. `local` is a Lua keyword: pipelines write `local_.file_match "x" {}`
--- and `local_.file_match.x.targets`; the component id stays local.file_match.x.
--- Every sync_period the globs of path_targets (their __path__, minus __path_exclude__)
--- are expanded; `targets` holds one target per matched regular file, with __path__ set to
--- the file's absolute path (a relative glob matches under the working directory, as
--- Alloy's) and the other labels of its path target, and changes only when the set of files
--- does. A glob gives 100000 files at most: one that reaches the bound makes the component
--- unhealthy, naming it, and counts in moonwatch_file_match_capped_globs.
local file_match = require("moonwatch.file_match")
local tail = require("moonwatch.native.tail")

local Instance = {}
Instance.__index = Instance

local M = {
  name = "local.file_match",
  doc = "Discovers files on the local filesystem with glob patterns (doublestar syntax).",
  args = {
    path_targets = { type = "targets", required = true,
      doc = "Targets to expand: __path__ is a glob (**, *, ?, [...], {a,b}); __path_exclude__ one to leave out." },
    sync_period = { type = "duration", default = "10s", positive = true, doc = "How often to sync filesystem and targets." },
    ignore_older_than = { type = "duration", default = "0s", min = 0,
      doc = "Ignores files whose last modification is older than this (0: none)." },
  },
  exports = {
    targets = { type = "targets", doc = "One target per matched file, with __path__ the file's path." },
  },
}

-- The globs' syntax: a message naming the path target at fault, or nil.
function M.validate(args)
  for i, t in ipairs(args.path_targets or {}) do
    if type(t) == "table" then
      if type(t.__path__) ~= "string" or t.__path__ == "" then
        return string.format("path_targets[%d]: __path__ is required (a glob)", i)
      end
      local ok, err = tail.match(t.__path__, "")
      if ok == nil then
        return string.format("path_targets[%d]: __path__ %q: %s", i, t.__path__, err)
      end
      if t.__path_exclude__ and t.__path_exclude__ ~= "" then
        ok, err = tail.match(t.__path_exclude__, "")
        if ok == nil then
          return string.format("path_targets[%d]: __path_exclude__ %q: %s", i, t.__path_exclude__, err)
        end
      end
    end
  end
  return nil
end

function M.new(ctx, args)
  local self = setmetatable({ ctx = ctx, files = 0, capped = false, capped_gauge = file_match.capped_gauge() }, Instance)
  self.args = args
  self:sync()
  return self
end

function Instance:update(args)
  local period = self.args.sync_period
  self.args = args
  self:sync()
  if self.timer and period ~= args.sync_period then
    self.timer:close()
    self.timer = nil
  end
  self:arm()
end

function Instance:arm()
  if not self.timer then
    self.timer = self.ctx:timer(self.args.sync_period, self.args.sync_period, function()
      self:sync()
    end, self.ctx.id .. " sync")
  end
end

function Instance:run()
  self:arm()
end

-- Expands the globs; exports the targets (the controller re-evaluates readers only
-- when they differ from the last export).
function Instance:sync()
  local out, seen, problems = {}, {}, {}
  local min_mtime = 0
  if self.args.ignore_older_than > 0 then
    min_mtime = os.time() - self.args.ignore_older_than
  end
  local capped = 0
  for _, t in ipairs(self.args.path_targets) do
    local paths, err, full = file_match.expand(t.__path__, t.__path_exclude__, min_mtime)
    if not paths then
      problems[#problems + 1] = err
    else
      if full then
        capped = capped + 1
        problems[#problems + 1] = file_match.capped_message(t.__path__)
      end
      for _, p in ipairs(paths) do
        local key = p .. "\0" .. tostring(t)
        if not seen[key] then
          seen[key] = true
          local target = {}
          for k, v in pairs(t) do
            if k ~= "__path_exclude__" then
              target[k] = v
            end
          end
          target.__path__ = p
          out[#out + 1] = target
        end
      end
    end
  end
  self.files, self.capped = #out, capped > 0
  self.capped_gauge:with(self.ctx.id):set(capped)
  if #problems > 0 then
    self.ctx:set_health("unhealthy", table.concat(problems, "; "))
  else
    self.ctx:set_health("healthy", "")
  end
  self.ctx:export({ targets = out })
end

function Instance:stop()
  self.capped_gauge:remove(self.ctx.id)
end

function Instance:debug_info()
  return { files_matched = self.files }
end

return M
