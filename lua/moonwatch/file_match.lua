--- moonwatch.file_match: the expansion of path targets (__path__ a doublestar glob,
--- __path_exclude__ one to leave out) for local.file_match and loki.source.file's file_match
--- block, as Alloy's: the matched files' paths are made absolute (Go's filepath.Abs: a
--- relative glob matches under the working directory), at most GLOB_MAX_FILES a glob. A glob
--- that reaches that bound leaves files out: the components say so in their health and in
--- moonwatch_file_match_capped_globs.
local fs = require("moonwatch.fs")
local metrics = require("moonwatch.metrics")
local tail = require("moonwatch.native.tail")

local M = {}

--- Files one glob gives at most (MW_GLOB_MAX_FILES, runtime/tail/glob.h).
M.GLOB_MAX_FILES = 100000

--- The regular files matching pattern and not exclude, as absolute paths.
---@param pattern string
---@param exclude string|nil
---@param min_mtime number|nil files modified before (seconds since the epoch) are left out
---@return string[]|nil paths, string|nil err (a malformed pattern), boolean|nil capped (true:
---  the glob reached GLOB_MAX_FILES, the files past it are left out)
function M.expand(pattern, exclude, min_mtime)
  local paths, err, capped = tail.glob(pattern, exclude, min_mtime)
  if not paths then
    return nil, err
  end
  local cwd
  if pattern:sub(1, 1) ~= "/" then
    cwd, err = fs.getcwd()
    if not cwd then
      return nil, string.format("__path__ %q: %s", pattern, err)
    end
  end
  if pattern:find("%.%.?/") or pattern:find("/%.%.?$") or pattern:find("//") then
    for i, p in ipairs(paths) do -- "." or ".." elements to clean
      paths[i] = fs.abs(p, cwd)
    end
  elseif cwd then -- (the matched part of a path never has them: readdir's . and .. are skipped)
    local prefix = cwd == "/" and "/" or cwd .. "/"
    for i, p in ipairs(paths) do
      paths[i] = prefix .. p
    end
  end
  return paths, nil, capped
end

--- The health message of a glob that reached the bound.
---@param pattern string
---@return string
function M.capped_message(pattern)
  return string.format("__path__ %q matched more than %d files: the files past them are ignored", pattern,
    M.GLOB_MAX_FILES)
end

--- The gauge of globs that reached the bound at their last expansion, by component_id.
function M.capped_gauge()
  return metrics.default:gauge("moonwatch_file_match_capped_globs",
    "Globs (__path__) whose last expansion reached the bound of 100000 files: the files past it are ignored.",
    { "component_id" })
end

return M
