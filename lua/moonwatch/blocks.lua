--- moonwatch.blocks: the top-level blocks of a pipeline, `logging { ... }` and
--- `tracing { ... }`, as Alloy's. Each is described like a component (name, doc,
--- args schema) so the same schema validates it and `moonwatch doc` documents it.
-- What moonwatch cannot do yet is refused at check time with a message that
-- says so, never accepted and ignored (tracing's jaeger_remote sampler).
local M = {}

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
  doc = "Top-level block: traces of moonwatch itself, as Alloy's. Spans for each load or reload (with a "
    .. "child per component evaluated), each scrape, each remote_write and loki.write request and each WAL "
    .. "checkpoint, with the resource attributes service.name=\"moonwatch\", service.version and "
    .. "service.instance.id, sent every second (or 512 spans) to write_to. Write `tracing { ... }`, without a "
    .. "label. Spans made before the block is evaluated are dropped, as in Alloy.",
  args = {
    sampling_fraction = { type = "number", default = 0.1, min = 0, max = 1,
      doc = "Fraction of traces to keep (0 to 1), decided per trace from its id (OpenTelemetry's "
        .. "TraceIdRatioBased): 1 keeps every trace, 0 none (no span is made). Alloy takes any number (above "
        .. "1 as 1); moonwatch refuses them: a 10 meant as 10% would keep every trace." },
    write_to = { type = "trace_receivers", default = {},
      doc = "Inputs of otelcol components to send traces to (list(otelcol.Consumer)), e.g. "
        .. "{ otelcol.exporter.otlp.default.input }. Empty: every trace is dropped (no span is made)." },
    send_traceparent = { type = "bool", default = false,
      doc = "Send the W3C traceparent header of a sampled span with the requests it stands for (scrapes)." },
    sampler = { type = "block", doc = "Custom sampling on top of sampling_fraction.", schema = { args = {
      jaeger_remote = { type = "any",
        check = function(v)
          if v ~= nil then
            return nil, "not supported yet: moonwatch samples by sampling_fraction only (remove the "
              .. "jaeger_remote block)"
          end
        end,
        doc = "Jaeger remote sampling. Not supported yet: refused." },
    } } },
  },
}

--- The block names, in the order they are checked.
M.NAMES = { "logging", "tracing" }

return M
