--- moonwatch.blocks: the top-level blocks of a pipeline, `logging { ... }` and
--- `tracing { ... }`, as Alloy's. Each is described like a component (name, doc,
--- args schema) so the same schema validates it and `moonwatch doc` documents it.
-- What moonwatch cannot do yet is refused at check time with a message that
-- says so, never accepted and ignored: moonwatch does not trace itself.
local M = {}

local function no_receivers_yet(what)
  return function(list)
    if #list > 0 then
      return nil, "not supported yet: " .. what
    end
  end
end

M.logging = {
  name = "logging",
  doc = "Top-level block: how moonwatch writes its own log lines (to stderr, and to write_to). Write "
    .. "`logging { ... }`, without a label.",
  args = {
    level = { type = "string", default = "info", enum = { "debug", "info", "warn", "error" },
      doc = "Lowest level of log lines emitted." },
    format = { type = "string", default = "logfmt", enum = { "logfmt", "json" }, doc = "Log line format." },
    write_to = { type = "log_receivers", default = {},
      doc = "Log receivers that also get moonwatch's own log lines, as written (logfmt or json), as entries "
        .. "of stream {component=\"moonwatch\"}; batched every 100ms, at most 1000 lines queued (more are "
        .. "dropped and counted); lines logged while they are delivered go to stderr only." },
  },
}

M.tracing = {
  name = "tracing",
  doc = "Top-level block: traces of moonwatch itself. Not supported yet: moonwatch does not trace itself, "
    .. "so only the defaults are accepted.",
  args = {
    sampling_fraction = { type = "number", default = 0.1, min = 0, max = 1,
      check = function(v)
        if v ~= 0.1 then
          return nil, "not supported yet: moonwatch does not trace itself (leave the default 0.1, or remove "
            .. "the tracing block)"
        end
      end,
      doc = "Fraction of traces to keep (0 to 1). Not supported yet: only the default is accepted." },
    write_to = { type = "list", of = { type = "any" }, default = {},
      check = no_receivers_yet("moonwatch does not trace itself (no trace receivers exist)"),
      doc = "Trace receivers. Not supported yet: must be empty." },
  },
}

--- The block names, in the order they are checked.
M.NAMES = { "logging", "tracing" }

return M
