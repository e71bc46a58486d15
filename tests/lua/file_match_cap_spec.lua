-- local.file_match and loki.source.file's file_match block: a glob gives 100,000 files at
-- most; one that matches more leaves files out, and both components say so in their health
-- (naming the glob) and in moonwatch_file_match_capped_globs (loki.source.file's block was
-- silent: a user watching its health did not know files were ignored).
local proc = require("helpers.proc")
local metrics = require("moonwatch.metrics")

local SRC = os.getenv("MOONWATCH_SOURCE_DIR") or "."

-- A component context that keeps what the component reports.
local function context(id, dir)
  local ctx = {
    id = id, storage_path = dir .. "/storage/" .. id,
    log = { warn = function() end, error = function() end, info = function() end },
    timer = function()
      return { close = function() end }
    end,
  }
  function ctx.set_health(_, state, msg)
    ctx.health = { state, msg }
  end
  function ctx.export(_, e)
    ctx.exports = e
  end
  return ctx
end

-- Whether /metrics shows the gauge's series of component id.
local function exposed(id)
  return metrics.default:expose():find('moonwatch_file_match_capped_globs{component_id="' .. id .. '"}', 1, true)
    ~= nil
end

local function capped_globs(id)
  return metrics.default:gauge("moonwatch_file_match_capped_globs", "", { "component_id" }):with(id):get()
end

-- 100,001 files globbed twice: ~16 s in the main build, ~55 s under ASan+UBSan (the glob's C code
-- runs there in tail_glob_spec; only the bound's stop is left to the main build).
local describe_unsanitized = proc.sanitized() and pending or describe

describe_unsanitized("a glob over the 100,000-file bound", function()
  local dir, many
  setup(function()
    dir = proc.tmpdir()
    many = dir .. "/many"
    assert.equals(0, proc.exit_code(os.execute(string.format(
      "mkdir -p %s && cd %s && python3 -c \"[open('f%%06d.log' %% i, 'w').close() for i in range(100001)]\"",
      proc.quote(many), proc.quote(many)))))
  end)
  teardown(function()
    os.execute("rm -rf " .. proc.quote(dir))
  end)

  local cap_msg = string.format('__path__ "%s/*.log" matched more than 100000 files: the files past them are ignored',
    "%s")

  it("local.file_match: unhealthy naming the glob, counted, 100,000 targets", function()
    local mod = dofile(SRC .. "/stdlib/local/file_match.lua")
    local ctx = context("local.file_match.cap", dir)
    local args = { path_targets = { { __path__ = many .. "/*.log" } }, sync_period = 10, ignore_older_than = 0 }
    local self = mod.new(ctx, args)
    assert.same({ "unhealthy", cap_msg:format(many) }, ctx.health)
    assert.equals(100000, #ctx.exports.targets)
    assert.equals(1, capped_globs(ctx.id))
    args.path_targets = { { __path__ = many .. "/f00000*.log" } }
    self:update(args)
    assert.same({ "healthy", "" }, ctx.health)
    assert.equals(10, #ctx.exports.targets)
    assert.equals(0, capped_globs(ctx.id))
    self:stop()
    assert.is_false(exposed(ctx.id), "the stopped component's series is gone")
  end)

  it("loki.source.file's file_match block: unhealthy naming the glob, counted", function()
    local mod = dofile(SRC .. "/stdlib/loki/source/file.lua")
    local ctx = context("loki.source.file.cap", dir)
    local args = {
      targets = { { __path__ = many .. "/*.log" } }, forward_to = {},
      encoding = "", tail_from_end = false, legacy_positions_file = "", decompression = {},
      file_watch = { min_poll_frequency = 0.25, max_poll_frequency = 0.25 },
      file_match = { enabled = true, sync_period = 10, ignore_older_than = 0 },
      max_line_size = 1000, max_open_files = 1,
    }
    local self = mod.new(ctx, args)
    assert.same({ "unhealthy", cap_msg:format(many) }, ctx.health)
    assert.equals(1, capped_globs(ctx.id))
    args.targets = { { __path__ = many .. "/f000001.log" } }
    self:update(args)
    assert.same({ "healthy", "" }, ctx.health)
    assert.equals(0, capped_globs(ctx.id))
    self:stop()
    assert.is_false(exposed(ctx.id), "the stopped component's series is gone")
  end)
end)
