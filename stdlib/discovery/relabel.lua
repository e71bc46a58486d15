--- discovery.relabel: relabels a list of targets (before scraping), as Alloy's
--- discovery.relabel; `output` updates whenever `targets` or the rules change.
--- Unlike Alloy, `targets` may be left out (an empty list): a discovery.relabel that only
--- holds rules for others (loki.source.journal's relabel_rules, as the self-monitoring
--- guide writes it) is accepted.
local relabel = require("moonwatch.relabel")

local Instance = {}
Instance.__index = Instance

local M = {
  name = "discovery.relabel",
  doc = "Rewrites the label sets of targets with Prometheus relabeling rules.",
  args = {
    targets = { type = "targets", default = {}, doc = "Targets to relabel (none: the component only exports its rules)." },
    rule = relabel.RULE,
  },
  exports = {
    output = { type = "targets", doc = "The relabeled targets (dropped ones left out)." },
    rules = { type = "list", doc = "The rules, for other components." },
  },
}

M.validate = relabel.validate_rule_arg

function M.new(ctx, args)
  local self = setmetatable({ ctx = ctx }, Instance)
  self:update(args)
  return self
end

function Instance:update(args)
  local segs, err = relabel.pipeline(args.rule)
  if not segs then
    error("rule: " .. err, 0)
  end
  local out = {}
  for _, t in ipairs(args.targets) do
    local labels = relabel.apply(segs, t)
    if labels then
      out[#out + 1] = labels
    end
  end
  self.inputs, self.outputs = #args.targets, #out
  self.ctx:export({ output = out, rules = args.rule })
end

function Instance:debug_info()
  return { targets_in = self.inputs, targets_out = self.outputs }
end

return M
