--- prometheus.exporter.process: ncabatoff/process-exporter's namedprocess_*
--- metrics, collected natively (runtime/exporters/process/group.c), as Alloy embeds it.
-- Processes are grouped by `matcher` blocks; the tracker keeps state between
-- collections, so counters stay monotonic while processes come and go. The
-- exporter's target is served in memory (and at /api/v0/component/<id>/metrics).
local inmemory = require("moonwatch.inmemory")
local procgroup = require("moonwatch.native.procgroup")

local Instance = {}
Instance.__index = Instance

local strings = { type = "list", of = { type = "string" } }

-- A name template must parse as the tracker will parse it (checked before anything runs).
local function check_template(tpl)
  local ok, err = procgroup.check_template(tpl)
  if not ok then
    return nil, (err:gsub("^name template", "invalid template"))
  end
end

local M = {
  name = "prometheus.exporter.process",
  doc = "Collects process stats from /proc, grouped by matchers (ncabatoff/process-exporter).",
  args = {
    procfs_path = { type = "string", default = "/proc", doc = "The procfs mount point." },
    track_children = { type = "bool", default = true,
      doc = "Count a tracked process's unmatched children toward its group." },
    track_threads = { type = "bool", default = true,
      doc = "Report metrics for a process's individual threads (namedprocess_namegroup_thread_*)." },
    gather_smaps = { type = "bool", default = true,
      doc = "Gather proportional memory (Pss, SwapPss) from the smaps_rollup file of a process." },
    recheck_on_scrape = { type = "bool", default = false,
      doc = "Recheck process names on each scrape (unmatched processes are otherwise ignored for good)." },
    remove_empty_groups = { type = "bool", default = false,
      doc = "Forget process groups with no processes (bounds cardinality of per-PID names)." },
    matcher = { type = "block", repeated = true, default = {},
      doc = "A process group; the first matcher whose rules all match names a process.",
      schema = { args = {
        comm = { type = "list", of = strings.of,
          doc = "Process names (the comm field of /proc/<pid>/stat, at most 15 characters)." },
        exe = { type = "list", of = strings.of,
          doc = "argv[0] basenames, or exact paths when they contain a slash." },
        cmdline = { type = "list", of = { type = "regex" },
          doc = "RE2 regexes that must all match the argv joined with spaces; named captures "
            .. "are available as {{.Matches.NAME}}." },
        name = { type = "string", default = "{{.ExeBase}}", check = check_template,
          doc = "The group name, a Go template over .Comm, .ExeBase, .ExeFull, .Username, .PID, "
            .. ".StartTime, .Cgroups and .Matches.NAME." },
      }, require_one = { { "comm", "exe", "cmdline" } } },
    },
  },
  exports = {
    targets = { type = "targets", doc = "One target on the in-memory address, job=\"integrations/process\"." },
  },
}

--- Builds a tracker from validated arguments; raises the C error message.
local function tracker(args)
  local t, err = procgroup.new({
    procfs_path = args.procfs_path,
    track_children = args.track_children,
    track_threads = args.track_threads,
    gather_smaps = args.gather_smaps,
    recheck_on_scrape = args.recheck_on_scrape,
    remove_empty_groups = args.remove_empty_groups,
  }, args.matcher)
  if not t then
    error(err, 0)
  end
  return t
end

function M.new(ctx, args)
  local self = setmetatable({ ctx = ctx, t = tracker(args) }, Instance)
  inmemory.register(ctx.id, function(accept, accept_encoding)
    return self:collect(accept, accept_encoding)
  end)
  ctx:export({ targets = { inmemory.target(ctx, "integrations/process") } })
  return self
end

--- Collects now: body, content type, gzipped (or nil, err).
function Instance:collect(accept, accept_encoding)
  return self.t:collect(accept, accept_encoding)
end

--- New arguments start a new tracker (accumulated counters restart, as Alloy
--- rebuilds the exporter); on error the previous tracker keeps running.
function Instance:update(args)
  self.t = tracker(args)
end

function Instance:stop()
  inmemory.unregister(self.ctx.id)
end

function Instance:debug_info()
  return { metrics_path = inmemory.path(self.ctx.id) }
end

return M
