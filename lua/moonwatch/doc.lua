--- moonwatch.doc: component reference generated from the schemas
--- (`moonwatch doc` lists components, `moonwatch doc NAME` prints one).
local registry = require("moonwatch.registry")
local schema = require("moonwatch.schema")
local duration = require("moonwatch.duration")
local blocks = require("moonwatch.blocks")

local M = {}

local function type_name(spec)
  if spec.type == "list" then
    return "list(" .. type_name(spec.of) .. ")"
  elseif spec.type == "tagged" then
    return spec.kind .. ".NAME { ... }"
  elseif spec.type == "map" and spec.of then
    return "map(" .. type_name(spec.of) .. ")"
  elseif spec.type == "block" then
    return spec.repeated and "block (repeatable)" or "block"
  end
  return spec.type
end

-- The constraints of spec as text (ranges), appended to its description.
local function constraints(spec)
  local fmt = function(n)
    return spec.type == "duration" and duration.format(n) or tostring(n)
  end
  if spec.positive then
    return " Greater than " .. fmt(0) .. "."
  elseif spec.min and spec.max then
    return string.format(" From %s to %s.", fmt(spec.min), fmt(spec.max))
  elseif spec.min then
    return string.format(" At least %s.", fmt(spec.min))
  elseif spec.max then
    return string.format(" At most %s.", fmt(spec.max))
  end
  return ""
end

local function default_text(spec)
  local d = spec.default
  if d == nil then
    return ""
  elseif type(d) == "table" then
    return next(d) == nil and "" or table.concat(d, ", ")
  elseif spec.type == "duration" and type(d) == "number" then
    return duration.format(d)
  end
  return string.format("%q", tostring(d)):gsub('^"(.*)"$', spec.type == "string" and '"%1"' or "%1")
end

local function rows(out, args, prefix)
  local nested = {}
  for _, name in ipairs(schema.sorted_keys(args)) do
    local spec = args[name]
    out[#out + 1] = string.format("| `%s%s` | %s | %s | %s | %s |", prefix, name, type_name(spec),
      ((spec.doc or "") .. constraints(spec)):gsub("|", "\\|"), default_text(spec), spec.required and "yes" or "no")
    if spec.type == "block" then
      nested[#nested + 1] = { prefix .. name, spec.schema }
    end
  end
  for _, b in ipairs(nested) do
    rows(out, b[2].args, b[1] .. ".")
  end
end

local function groups(out, sch, prefix)
  for _, group in ipairs(sch.exclusive or {}) do
    out[#out + 1] = ""
    out[#out + 1] = "Mutually exclusive: " .. prefix .. table.concat(group, ", " .. prefix) .. "."
  end
  for _, group in ipairs(sch.require_one or {}) do
    out[#out + 1] = ""
    out[#out + 1] = "At least one of: " .. prefix .. table.concat(group, ", " .. prefix) .. "."
  end
  for _, name in ipairs(schema.sorted_keys(sch.args or {})) do
    local spec = sch.args[name]
    if spec.type == "block" then
      groups(out, spec.schema, prefix .. name .. ".")
    end
  end
end

-- The tagged values an argument takes (loki.process's stages, stage.metrics' metrics): one
-- section per tag; a kind met inside another (metric inside stage) gets its sections after.
local function tagged_sections(out, args, done)
  done = done or {}
  local nested = {}
  for _, name in ipairs(schema.sorted_keys(args)) do
    local spec = args[name]
    local of = spec.type == "list" and spec.of or spec
    if of.type == "tagged" and not done[of.kind] then
      done[of.kind] = true
      out[#out + 1] = ""
      out[#out + 1] = string.format("## %s.NAME { ... } (positional entries, in order)", of.kind)
      for _, tag in ipairs(schema.sorted_keys(of.variants)) do
        local v = of.variants[tag]
        out[#out + 1] = ""
        out[#out + 1] = string.format("### %s.%s", of.kind, tag)
        out[#out + 1] = ""
        out[#out + 1] = v.doc or ""
        local plain = {}
        for k, a in pairs(v.args) do
          local aof = a.type == "list" and a.of or a
          if aof.type == "tagged" then
            nested[#nested + 1] = v.args
          else
            plain[k] = a
          end
        end
        if next(plain) then
          out[#out + 1] = ""
          out[#out + 1] = "| Name | Type | Description | Default | Required |"
          out[#out + 1] = "|---|---|---|---|---|"
          rows(out, plain, "")
        end
        if v.positional then
          local pos = v.args[v.positional]
          local kind = (pos.type == "list" and pos.of or pos).kind
          out[#out + 1] = ""
          out[#out + 1] = string.format("Takes %s.NAME { ... } entries as positional entries.", kind)
        end
      end
    end
  end
  for _, a in ipairs(nested) do
    tagged_sections(out, a, done)
  end
end

--- The reference of one component module as Markdown.
function M.component(mod)
  local out = { "# " .. mod.name, "", mod.doc or "", "", "## Arguments", "",
    "| Name | Type | Description | Default | Required |", "|---|---|---|---|---|" }
  rows(out, mod.args, "")
  groups(out, { args = mod.args, exclusive = mod.exclusive, require_one = mod.require_one }, "")
  tagged_sections(out, mod.args)
  if not mod.exports then -- a top-level block
    return table.concat(out, "\n") .. "\n"
  end
  out[#out + 1] = ""
  out[#out + 1] = "## Exports"
  out[#out + 1] = ""
  out[#out + 1] = "| Name | Type | Description |"
  out[#out + 1] = "|---|---|---|"
  for _, name in ipairs(schema.sorted_keys(mod.exports)) do
    local e = mod.exports[name]
    out[#out + 1] = string.format("| `%s` | %s | %s |", name, e.type or "", e.doc or "")
  end
  return table.concat(out, "\n") .. "\n"
end

--- `moonwatch doc [NAME]`: returns the text and an exit code.
function M.main(name, dirs)
  if not name then
    local lines = { "Components (moonwatch doc NAME for one):" }
    for _, n in ipairs(registry.list(dirs)) do
      local mod, err = registry.find(n, dirs)
      local text = mod and (mod.doc or "") or ("(cannot load: " .. tostring(err):match("^[^\n]*") .. ")")
      lines[#lines + 1] = string.format("  %-32s %s", n, text)
    end
    lines[#lines + 1] = ""
    lines[#lines + 1] = "Top-level blocks:"
    for _, n in ipairs(blocks.NAMES) do
      lines[#lines + 1] = string.format("  %-32s %s", n, blocks[n].doc)
    end
    return table.concat(lines, "\n") .. "\n", 0
  end
  if blocks[name] and blocks[name].args then
    return M.component(blocks[name]), 0
  end
  local mod, err = registry.find(name, dirs)
  if not mod then
    return (err or ("unknown component " .. name)) .. "\n", 1
  end
  return M.component(mod), 0
end

return M
