--- loki.process's stages: for each stage its argument schema (Alloy's names and defaults),
-- its doc, and new(args, env) which returns run(list) -> list: the stage applied to a list
-- of entries, in order (stage after stage over the whole batch: each loop stays monomorphic).
-- An entry is { labels, line, sec, nsec, metadata, extracted, own, dropped }: labels may be
-- shared by the entries of a stream and never changed in place (M.set_label derives a new set);
-- a stage that drops marks e.dropped (env.drop counts it) and returns the survivors.
-- env = { drop(e, reason), log, now(), compile(stages, after) (nested pipelines),
--         resume(list) (entries a stage held go on with the stages after it), tick(fn) }.
local cjson = require("cjson")
local regex = require("moonwatch.native.regex")
local budget = require("moonwatch.budget")
local errors = require("moonwatch.errors")
local jmespath = require("loki.process.jmespath")
local jsonx = require("moonwatch.native.jsonx")
local logfmt = require("loki.process.logfmt")
local gotime = require("loki.process.gotime")
local gotemplate = require("loki.process.gotemplate")
local selector = require("loki.process.selector")
local values = require("loki.process.values")
local custom = require("loki.process.custom_metrics")

local str = values.str
local M = {}

--- The stage specs (filled below); the schema type of a stage entry.
M.STAGES = {}
M.SPEC = { type = "tagged", kind = "stage", variants = {}, doc = "Processing stages, in order." }

-- Label sets are shared and never changed in place: the entries of a stream share one
-- table, and a change makes (once) a derived table that the entries changed the same way
-- share too (derive[L][name][value] -> L'), so later stages and the output batch see few
-- distinct tables (one stream key, one encoding each). Only stage.lua hands a private copy
-- to the user's function.
local derive = setmetatable({}, { __mode = "k" })
local DELETE = {}

--- Sets label k of e to v (nil or "": removes it). A value that is not UTF-8 is skipped, as
--- Alloy's label stages skip it (a 0xff byte could not be encoded in the batch anyway).
local function set_label(e, k, v)
  if v == "" then
    v = nil
  elseif v and not values.is_utf8(v) then
    return
  end
  local l = e.labels
  if l[k] == v then
    return
  end
  local d = derive[l]
  if not d then
    d = {}
    derive[l] = d
  end
  local byk = d[k]
  if not byk then
    -- weak values: a derived set lives as long as entries hold it (it would otherwise keep
    -- the sets derived from it, a chain that weak keys free one garbage cycle per link)
    byk = setmetatable({}, { __mode = "v" })
    d[k] = byk
  end
  local key = v == nil and DELETE or v
  local l2 = byk[key]
  if not l2 then
    l2 = {}
    for n, x in pairs(l) do
      l2[n] = x
    end
    l2[k] = v
    byk[key] = l2
  end
  e.labels = l2
end
M.set_label = set_label

--- e's labels as a private table the caller may change (stage.lua).
local function private_labels(e)
  local t = {}
  for k, v in pairs(e.labels) do
    t[k] = v
  end
  e.labels = t
  return t
end

-- labels -> metatable { __index = labels }. Weak values too: the metatable refers to its key,
-- and LuaJIT's weak keys are not ephemerons, so with weak keys alone no entry (and no
-- label set) was ever collected: memory grew with every stream of every batch.
local extracted_base = setmetatable({}, { __mode = "kv" })

--- A new extracted map for an entry with labels l: it starts with the labels (read through
--- __index: nothing is copied).
function M.new_extracted(l)
  local mt = extracted_base[l]
  if not mt then
    mt = { __index = l }
    extracted_base[l] = mt
  end
  return setmetatable({}, mt)
end

--- The whole extracted map of e as a plain table (the labels it started with included).
local function extracted_all(e)
  local ex = e.extracted
  local t = {}
  local mt = getmetatable(ex)
  if mt then
    for k, v in pairs(mt.__index) do
      t[k] = v
    end
  end
  for k, v in pairs(ex) do
    t[k] = v
  end
  return t
end

--- pairs(extracted_all(e)) without the copy: acc = fn(acc, ex, k, v, arg) for each value of
--- e's extracted map ex (its own, then the labels it reads and has not replaced); fn may set
--- ex[k]. Returns acc.
local function fold_extracted(e, fn, acc, arg)
  local ex = e.extracted
  for k, v in pairs(ex) do
    acc = fn(acc, ex, k, v, arg)
  end
  local mt = getmetatable(ex)
  if mt then
    for k, v in pairs(mt.__index) do
      if rawget(ex, k) == nil then
        acc = fn(acc, ex, k, v, arg)
      end
    end
  end
  return acc
end

-- A stream key of e's labels (names sorted), computed once per label set.
local keys = setmetatable({}, { __mode = "k" }) -- labels -> key
local function labels_key(e)
  local l = e.labels
  local key = keys[l]
  if key then
    return key
  end
  local names = {}
  for k in pairs(l) do
    names[#names + 1] = k
  end
  table.sort(names)
  for i, k in ipairs(names) do
    names[i] = k .. "\255" .. l[k]
  end
  key = table.concat(names, "\255")
  keys[l] = key
  return key
end
M.labels_key = labels_key

local function compact(list)
  local out, n = {}, 0
  for i = 1, #list do
    local e = list[i]
    if not e.dropped then
      n = n + 1
      out[n] = e
    end
  end
  return out
end
M.compact = compact

local function input_of(e, source)
  if source == "" then
    return e.line
  end
  return str(e.extracted[source])
end

-- The line (source nil), or the text of extracted value source when it is a string, number or
-- boolean (nil otherwise: a map or list is not text to match).
local function scalar_input_of(e, source)
  if not source then
    return e.line
  end
  local v = e.extracted[source]
  local t = type(v)
  return (t == "string" or t == "number" or t == "boolean") and str(v) or nil
end

local function check_regex(re)
  local r, err = regex.new(re)
  if not r then
    return nil, string.format("invalid regex %q: %s", re, err)
  end
  return true
end

-- A check refusing "" with msg (Alloy's message of the stage).
local function nonempty(msg)
  return function(v)
    if v == "" then
      return nil, msg
    end
  end
end

local function label_names(field)
  return function(b)
    for k in pairs(b[field] or {}) do
      if not values.is_label_name(k) then
        return nil, string.format("%s: %q is not a valid label name", field, k)
      end
    end
  end
end

local function stage(name, def)
  M.STAGES[name] = def
  def.schema.doc = def.doc
  M.SPEC.variants[name] = def.schema
end

local STAGE_LIST = { type = "list", of = M.SPEC, default = {},
  doc = "Nested stages (written as positional stage.NAME { ... } entries)." }
M.STAGE_LIST = STAGE_LIST

-- json ---------------------------------------------------------------------------------
local function json_expr(name, expr)
  local steps, err = jmespath.compile(expr ~= "" and expr or name)
  if not steps and expr == "" then
    return { name } -- a key that is not an identifier: the field of that name
  end
  return steps, err
end

-- JSON as Go reads it: no hex numbers, NaN or Infinity (cjson's default takes them)
local strict = cjson.new()
strict.decode_invalid_numbers(false)
-- cjson stops at a NUL byte (it took '[1]\0junk' for [1]); Go's JSON has none outside escapes
local function strict_decode(s)
  if s:find("\0", 1, true) then
    error("invalid character '\\x00'", 0)
  end
  return strict.decode(s)
end

stage("json", {
  doc = "Parses the line (or an extracted value) as a JSON object and extracts values with JMESPath "
    .. "expressions (field names, \"quoted names\", a.b, [N]).",
  schema = {
    args = {
      expressions = { type = "map", of = { type = "string" }, required = true,
        doc = "Name to extract -> JMESPath expression (\"\": the name itself)." },
      source = { type = "string", default = "", doc = "Extracted value to parse (\"\": the line)." },
      drop_malformed = { type = "bool", default = false, doc = "Drop entries whose input is not valid JSON." },
    },
    validate = function(b)
      for name, expr in pairs(b.expressions) do
        local _, err = json_expr(name, expr)
        if err then
          return nil, string.format("expressions[%q]: %s", name, err)
        end
      end
    end,
  },
  new = function(a, env)
    local names, steps = {}, {}
    for name in pairs(a.expressions) do
      names[#names + 1] = name
    end
    table.sort(names)
    local paths, native = {}, #names <= jsonx.MAX_PATHS
    for i, name in ipairs(names) do
      steps[i] = json_expr(name, a.expressions[name])
      local path = {}
      for k, st in ipairs(steps[i]) do
        if type(st) == "string" then
          path[k] = st
        elseif st.index >= 0 then
          -- past any array a document can hold (and still a positive int64 in C)
          path[k] = math.min(st.index, 2 ^ 53)
        else
          native = false -- a negative index needs the array's length: the decoder's way
        end
      end
      paths[i] = path
    end
    local x = native and assert(jsonx.new(paths)) or nil
    local source, drop_malformed, search, decode = a.source, a.drop_malformed, jmespath.search, strict_decode
    local null = cjson.null
    -- the value of expression k from the C extractor, as the decoder would give it
    local function native_value(k)
      local kind = x:kind(k)
      if kind == "string" then
        return x:text(k)
      elseif kind == "number" then
        return tonumber(x:text(k))
      elseif kind == "true" then
        return true
      elseif kind == "false" then
        return false
      elseif kind == "object" or kind == "array" then
        return values.json(decode(x:text(k)))
      end
      return nil -- missing or null
    end
    return function(list)
      local dropped = false
      for i = 1, #list do
        local e = list[i]
        local input = input_of(e, source)
        if input then
          local ex = e.extracted
          if x then
            if x:run(input) then
              for k = 1, #names do
                ex[names[k]] = native_value(k)
              end
            elseif drop_malformed then
              env.drop(e, "malformed_json")
              dropped = true
            end
          else
            local ok, data = pcall(decode, input)
            -- as Alloy's (a map[string]any): an object (or null), not an array
            if not ok or type(data) ~= "table" or not input:find("^[ \t\r\n]*{") then
              if drop_malformed and not (ok and data == null) then
                env.drop(e, "malformed_json")
                dropped = true
              end
            else
              for k = 1, #names do
                local v = search(steps[k], data)
                if v == null then
                  v = nil
                elseif type(v) == "table" then
                  v = values.json(v)
                end
                ex[names[k]] = v
              end
            end
          end
        end
      end
      return dropped and compact(list) or list
    end
  end,
})

-- docker, cri ----------------------------------------------------------------------------
local RFC3339NANO = gotime.compile("RFC3339Nano")

stage("docker", {
  doc = "Reads Docker's json-file lines ({\"log\":...,\"stream\":...,\"time\":...}): the line becomes log, "
    .. "the label stream is set, the timestamp is time (RFC3339Nano); extracted: output, stream, timestamp.",
  schema = { args = {} },
  new = function()
    local x = assert(jsonx.new({ { "log" }, { "stream" }, { "time" } }))
    return function(list)
      for i = 1, #list do
        local e = list[i]
        -- as Go's decoding into a struct: a field of another type fails the line, a missing one is ""
        if x:run(e.line) and (x:kind(1) or "string") == "string" and (x:kind(2) or "string") == "string"
          and (x:kind(3) or "string") == "string" then
          local log, stream, time = x:text(1) or "", x:text(2) or "", x:text(3) or ""
          local ex = e.extracted
          ex.output, ex.stream, ex.timestamp = log, stream, time
          e.line = log
          set_label(e, "stream", stream)
          local sec, nsec = gotime.parse(RFC3339NANO, time)
          if sec then
            e.sec, e.nsec = sec, nsec
          end
        end
      end
      return list
    end
  end,
})

-- <time> <stdout|stderr> [F|P] <content>, as Alloy's parser reads it (spaces between fields
-- may repeat, the flag may be missing, the content may be empty): time, stream, flag, content.
local function parse_cri(line)
  local t, rest = line:match("^(%S+)%s(.*)$")
  if not t then
    return nil
  end
  rest = rest:gsub("^ +", "")
  local stream = rest:sub(1, 6)
  if stream ~= "stdout" and stream ~= "stderr" then
    return nil
  end
  rest = rest:sub(7):gsub("^ +", "")
  local flag = rest:sub(1, 1)
  if flag == "P" or flag == "F" then
    rest = rest:sub(2):gsub("^ +", "")
  else
    flag = ""
  end
  return t, stream, flag, rest
end

stage("cri", {
  doc = "Reads CRI lines (<time> <stdout|stderr> <F|P> <content>): the line becomes content, the label stream "
    .. "is set, the timestamp is time; partial lines (P) of a stream wait for its full line (F) and are "
    .. "joined to it; extracted: time, stream, flags, content.",
  schema = {
    args = {
      max_partial_lines = { type = "int", default = 100, min = 1,
        doc = "Streams with partial lines held at most; past it they are all sent on as they are." },
      max_partial_line_size = { type = "int", default = 0, min = 0,
        doc = "Bytes a joined partial line keeps (with max_partial_line_size_truncate)." },
      max_partial_line_size_truncate = { type = "bool", default = false,
        doc = "Truncate joined partial lines to max_partial_line_size bytes." },
    },
  },
  new = function(a, env)
    local partial, npartial = {}, 0 -- stream key -> entry
    local flushed = env.counter("loki_process_cri_partial_lines_flushed_total",
      "A count of partial lines that were flushed prematurely due to the max_partial_lines limit being exceeded")
    local truncated = env.counter("loki_process_cri_lines_truncated_total",
      "A count of lines that were truncated due to the max_partial_line_size limit")
    -- A partial entry keeps its parts (pe.parts, pe.size bytes) and joins them once, when it
    -- goes on: joining at each part made a run of n parts cost O(n^2) bytes copied.
    local function truncate(e)
      if a.max_partial_line_size_truncate and e.size > a.max_partial_line_size then
        e.parts = { table.concat(e.parts):sub(1, a.max_partial_line_size) }
        e.size = a.max_partial_line_size
        truncated:inc()
      end
    end
    local function joined(pe)
      pe.line = table.concat(pe.parts)
      pe.parts, pe.size = nil, nil
      return pe
    end
    env.tick(function(force)
      if force and npartial > 0 then -- a stop or a new configuration: what waits goes on
        local out = {}
        for _, pe in pairs(partial) do
          out[#out + 1] = joined(pe)
        end
        partial, npartial = {}, 0
        env.resume(out)
      end
    end)
    return function(list)
      local out = {}
      for i = 1, #list do
        local e = list[i]
        local t, stream, flag, content = parse_cri(e.line)
        if not t then
          out[#out + 1] = e
        else
          local ex = e.extracted
          ex.time, ex.flags, ex.stream, ex.content = t, flag, stream, content
          e.line = content
          local sec, nsec = gotime.parse(RFC3339NANO, t)
          if sec then
            e.sec, e.nsec = sec, nsec
          end
          set_label(e, "stream", stream)
          local key = labels_key(e)
          local prev = partial[key]
          if flag == "P" then
            if not prev and npartial >= a.max_partial_lines then
              flushed:add(npartial)
              env.log:warn("cri stage: partial lines upperbound exceeded. merging it to single line",
                { threshold = a.max_partial_lines })
              for _, pe in pairs(partial) do
                out[#out + 1] = joined(pe)
              end
              partial, npartial = {}, 0
            end
            if prev then
              e.parts, e.size = prev.parts, prev.size + #e.line
              e.parts[#e.parts + 1] = e.line
            else
              e.parts, e.size = { e.line }, #e.line
              npartial = npartial + 1
            end
            truncate(e)
            partial[key] = e
          else
            if prev then
              e.parts, e.size = prev.parts, prev.size + #e.line
              e.parts[#e.parts + 1] = e.line
              truncate(e)
              joined(e)
              partial[key] = nil
              npartial = npartial - 1
            end
            out[#out + 1] = e
          end
        end
      end
      return out
    end
  end,
})

-- logfmt -------------------------------------------------------------------------------
stage("logfmt", {
  doc = "Parses the line (or an extracted value) as logfmt and extracts the fields mapped.",
  schema = {
    args = {
      mapping = { type = "map", of = { type = "string" }, required = true,
        doc = "Name to extract -> logfmt key (\"\": the name itself)." },
      source = { type = "string", default = "", doc = "Extracted value to parse (\"\": the line)." },
    },
  },
  new = function(a)
    local wanted = {} -- logfmt key -> names
    for name, key in pairs(a.mapping) do
      key = key ~= "" and key or name
      wanted[key] = wanted[key] or {}
      table.insert(wanted[key], name)
    end
    local source = a.source
    return function(list)
      for i = 1, #list do
        local e = list[i]
        local input = input_of(e, source)
        if input then
          local ex = e.extracted
          logfmt.each(input, function(k, v)
            local names = wanted[k]
            if names then
              for j = 1, #names do
                ex[names[j]] = v
              end
            end
          end)
        end
      end
      return list
    end
  end,
})

-- regex --------------------------------------------------------------------------------
stage("regex", {
  doc = "Matches an RE2 regex on the line (or an extracted value); its named groups become extracted values.",
  schema = {
    args = {
      expression = { type = "string", required = true, check = check_regex,
        doc = "RE2 regex whose named capture groups (?P<name>...) are extracted." },
      source = { type = "string", default = "", doc = "Extracted value to match (\"\": the line)." },
      labels_from_groups = { type = "bool", default = false,
        doc = "Whether each named group also sets the label of its name (overriding one the entry has; "
          .. "an invalid label name or value is skipped, as Alloy's)." },
    },
  },
  new = function(a)
    local re = assert(regex.new(a.expression))
    local names, source, as_labels = re:names(), a.source, a.labels_from_groups
    local groups = re:groups()
    return function(list)
      for i = 1, #list do
        local e = list[i]
        local input = input_of(e, source)
        local caps = input and re:captures(input)
        if caps then
          local ex = e.extracted
          for g = 1, groups do
            local n = names[g]
            if n then
              local v = caps[g] or ""
              ex[n] = v
              if as_labels and values.is_label_name(n) then
                set_label(e, n, v) -- set_label skips a value that is not UTF-8
              end
            end
          end
        end
      end
      return list
    end
  end,
})

-- pattern ------------------------------------------------------------------------------
-- Loki's pattern syntax: `<name>` captures (`<_>` captures nothing), any other text is literal.
-- The parts, alternating literal strings and { name } captures, or nil, err.
local function compile_pattern(p)
  local parts, pos, names, seen = {}, 1, {}, {}
  while pos <= #p do
    local s, e, name = p:find("<([%a_][%w_]*)>", pos)
    local lit = p:sub(pos, (s or #p + 1) - 1)
    if lit ~= "" then
      if type(parts[#parts]) == "string" then
        parts[#parts] = parts[#parts] .. lit
      else
        parts[#parts + 1] = lit
      end
    end
    if not s then
      break
    end
    if type(parts[#parts]) == "table" then
      return nil, "failed to parse pattern: found consecutive capture: invalid expression"
    end
    if name ~= "_" then
      if seen[name] then
        return nil, string.format("failed to parse pattern: duplicate capture name (%s): invalid expression", name)
      end
      seen[name] = true
      names[#names + 1] = name
    end
    parts[#parts + 1] = { name }
    pos = e + 1
  end
  if #names == 0 then
    return nil, "failed to parse pattern: at least one capture is required"
  end
  return parts
end

-- The captures of pattern parts in s, as Loki's matcher finds them: a leading literal must
-- start s, each capture runs to the first occurrence of the literal after it (to the end of
-- s when there is none, or when it ends the pattern). { name = text }, or nil.
local function match_pattern(parts, s)
  if s == "" then
    return nil
  end
  local k, pos, out = 1, 1, {}
  if type(parts[1]) == "string" then
    if s:sub(1, #parts[1]) ~= parts[1] then
      return nil
    end
    pos, k = #parts[1] + 1, 2
  end
  if k > #parts then
    return nil
  end
  while k <= #parts do
    local name = parts[k][1]
    local lit = parts[k + 1]
    if not lit then
      if name ~= "_" then
        out[name] = s:sub(pos)
      end
      return out
    end
    local i = s:find(lit, pos, true)
    if not i then
      if name ~= "_" then
        out[name] = s:sub(pos)
      end
      return out
    end
    if name ~= "_" then
      out[name] = s:sub(pos, i - 1)
    end
    pos, k = i + #lit, k + 2
  end
  return out
end

stage("pattern", {
  doc = "Matches a Loki pattern (`<name>` captures, `<_>` skips, the rest literal) on the line (or an "
    .. "extracted value); its captures become extracted values (and labels with labels_from_groups).",
  schema = {
    args = {
      pattern = { type = "string", required = true, doc = "The pattern, e.g. \"<ip> - <_> [<ts>] <msg>\".",
        check = function(v)
          local ok, err = compile_pattern(v)
          return ok and true or nil, err
        end },
      source = { type = "string", doc = "Extracted value to match (default: the line).",
        check = nonempty("empty source") },
      labels_from_groups = { type = "bool", default = false,
        doc = "Whether each capture also sets the label of its name (overriding one the entry has)." },
    },
  },
  new = function(a)
    local parts = assert(compile_pattern(a.pattern))
    local source, as_labels = a.source, a.labels_from_groups
    return function(list)
      for i = 1, #list do
        local e = list[i]
        local input = scalar_input_of(e, source)
        local caps = input and match_pattern(parts, input)
        if caps then
          local ex = e.extracted
          for name, v in pairs(caps) do
            ex[name] = v
            if as_labels then
              set_label(e, name, v) -- set_label skips a value that is not UTF-8
            end
          end
        end
      end
      return list
    end
  end,
})

-- replace ------------------------------------------------------------------------------
stage("replace", {
  doc = "Replaces what the capture groups of an RE2 regex match in the line (or an extracted value) "
    .. "with `replace` (a template: {{ .Value }} is the group's text); named groups are also extracted.",
  schema = {
    args = {
      expression = { type = "string", required = true, check = check_regex, doc = "RE2 regex with capture groups." },
      replace = { type = "string", default = "", doc = "The replacement of each group (a template)." },
      source = { type = "string", default = "", doc = "Extracted value to change (\"\": the line)." },
    },
    validate = function(b)
      local _, err = gotemplate.compile(b.replace)
      if err then
        return nil, "replace: " .. err
      end
    end,
  },
  new = function(a)
    local re = assert(regex.new(a.expression))
    local tpl = assert(gotemplate.compile(a.replace))
    local names, groups, source = re:names(), re:groups(), a.source
    -- the template's data reads the extracted values of the entry being replaced in (ex), as
    -- strings: one metatable for the stage, not one (and a closure) per entry
    local ex
    local data_mt = { __index = function(_, k)
      return str(ex[k])
    end }
    return function(list)
      for i = 1, #list do
        local e = list[i]
        local input = input_of(e, source)
        local ms = input and re:all(input)
        if ms and #ms > 0 then
          -- as Alloy's: the template sees the extracted values as strings, and .Value; each
          -- group's text is replaced; a named group is extracted as its first match's
          -- replacement; a template that fails leaves the entry as it was
          ex = e.extracted
          local data = setmetatable({}, data_mt)
          local out, prev, replaced, ok = {}, 0, {}, true
          for m = 1, #ms do
            local ov = ms[m]
            for g = 1, groups do
              local gs, gf = ov[2 * g], ov[2 * g + 1]
              if gs >= 0 then
                local text = input:sub(gs + 1, gf)
                data.Value = text
                local rep = gotemplate.execute(tpl, data)
                if not rep then
                  ok = false
                  break
                end
                if prev == 0 or prev <= gs then
                  out[#out + 1] = input:sub(prev + 1, gs)
                  out[#out + 1] = rep
                  prev = gf
                end
                replaced[text] = rep
              end
            end
            if not ok then
              break
            end
          end
          if ok then
            out[#out + 1] = input:sub(prev + 1)
            local res = table.concat(out)
            if source == "" then
              e.line = res
            else
              ex[source] = res
            end
            local first = ms[1]
            for g = 1, groups do
              if names[g] then
                local gs = first[2 * g]
                local rep = replaced[gs >= 0 and input:sub(gs + 1, first[2 * g + 1]) or ""]
                if rep ~= nil then
                  ex[names[g]] = rep
                end
              end
            end
          end
        end
      end
      ex = nil -- not kept past the batch
      return list
    end
  end,
})

-- labels, static_labels, label_drop, label_keep, structured_metadata -----------------------
stage("labels", {
  doc = "Sets labels from extracted values (label -> extracted name, \"\": the same name), or from "
    .. "structured metadata.",
  schema = {
    args = {
      values = { type = "map", of = { type = "string" }, default = {}, doc = "Label -> extracted name." },
      source_type = { type = "string", default = "extracted", enum = { "extracted", "structured_metadata" },
        doc = "Where the values are read: the extracted values, or the entry's structured metadata." },
    },
    validate = label_names("values"),
  },
  new = function(a)
    local names, srcs = {}, {}
    for k, v in pairs(a.values) do
      names[#names + 1], srcs[#srcs + 1] = k, v ~= "" and v or k
    end
    local from_metadata = a.source_type == "structured_metadata"
    return function(list)
      for i = 1, #list do
        local e = list[i]
        local ex = from_metadata and e.metadata or e.extracted
        for k = 1, #names do
          local v = ex[srcs[k]]
          if v ~= nil then
            v = str(v)
            if values.is_utf8(v) then -- as Alloy's: an invalid label value is skipped
              set_label(e, names[k], v)
            end
          end
        end
      end
      return list
    end
  end,
})

stage("static_labels", {
  doc = "Sets fixed labels.",
  schema = {
    args = { values = { type = "map", of = { type = "string" }, default = {}, doc = "Label -> value." } },
    validate = label_names("values"),
  },
  new = function(a)
    local vals = {}
    for k, v in pairs(a.values) do
      if v ~= "" and values.is_utf8(v) then -- as Alloy's: an empty or invalid value is skipped
        vals[k] = v
      end
    end
    return function(list)
      for i = 1, #list do
        local e = list[i]
        for k, v in pairs(vals) do
          set_label(e, k, v)
        end
      end
      return list
    end
  end,
})

stage("label_drop", {
  doc = "Removes labels.",
  schema = { args = { values = { type = "list", of = { type = "string" }, default = {}, doc = "Labels to remove." } } },
  new = function(a)
    local names = a.values
    return function(list)
      for i = 1, #list do
        local e = list[i]
        for k = 1, #names do
          set_label(e, names[k], nil)
        end
      end
      return list
    end
  end,
})

stage("label_keep", {
  doc = "Keeps only these labels.",
  schema = { args = { values = { type = "list", of = { type = "string" }, default = {}, doc = "Labels to keep." } } },
  new = function(a)
    local keep = {}
    for _, n in ipairs(a.values) do
      keep[n] = true
    end
    return function(list)
      for i = 1, #list do
        local e = list[i]
        for k in pairs(e.labels) do
          if not keep[k] then
            set_label(e, k, nil)
          end
        end
      end
      return list
    end
  end,
})

stage("structured_metadata", {
  doc = "Adds extracted values to the entry's structured metadata (name -> extracted name, \"\": the same "
    .. "name; and every extracted value whose name matches regex); a label so added is removed from the "
    .. "labels, as Alloy's.",
  schema = {
    args = {
      values = { type = "map", of = { type = "string" }, default = {}, doc = "Name -> extracted name." },
      regex = { type = "string", default = "", check = check_regex,
        doc = "RE2 regex: the extracted values (the labels included) whose name it matches are added." },
    },
    validate = label_names("values"),
  },
  new = function(a)
    local vals = a.values
    local re = a.regex ~= "" and assert(regex.new(a.regex)) or nil
    local function put(e, k, v)
      v = str(v)
      if values.is_utf8(v) then -- as Alloy's: an invalid value is skipped
        e.metadata[k] = v
      end
    end
    local function put_matching(e, _, k, v) -- (a fold_extracted fn)
      if re:find(k) then
        put(e, k, v)
      end
      return e
    end
    return function(list)
      for i = 1, #list do
        local e = list[i]
        local ex = e.extracted
        for k, src in pairs(vals) do
          local v = ex[src ~= "" and src or k]
          if v ~= nil then
            put(e, k, v)
          end
        end
        if re then
          fold_extracted(e, put_matching, e)
        end
        -- labels named by values (their source) or matching regex move to the metadata
        local l = e.labels
        for k, src in pairs(vals) do
          src = src ~= "" and src or k
          if l[src] ~= nil then
            e.metadata[k] = l[src]
            set_label(e, src, nil)
          end
        end
        if re then
          for k, v in pairs(l) do
            if re:find(k) then
              e.metadata[k] = v
              set_label(e, k, nil)
            end
          end
        end
      end
      return list
    end
  end,
})

stage("structured_metadata_drop", {
  doc = "Removes entries of the structured metadata.",
  schema = {
    args = { values = { type = "list", of = { type = "string" }, default = {}, doc = "Names to remove." } },
    validate = function(b)
      if #b.values == 0 then
        return nil, "values: structured_metadata_drop stage config cannot be empty"
      end
    end,
  },
  new = function(a)
    local names = a.values
    return function(list)
      for i = 1, #list do
        local md = list[i].metadata
        for k = 1, #names do
          md[names[k]] = nil
        end
      end
      return list
    end
  end,
})

stage("tenant", {
  doc = "Sets the tenant ID of the entry (the __tenant_id__ label, which loki.write sends as X-Scope-OrgID) "
    .. "from an extracted value, a label or a fixed value.",
  schema = {
    args = {
      label = { type = "string", default = "", doc = "Label whose value is the tenant ID." },
      source = { type = "string", default = "", doc = "Extracted value that is the tenant ID." },
      value = { type = "string", default = "", doc = "The tenant ID." },
    },
    validate = function(b)
      local n = (b.label ~= "" and 1 or 0) + (b.source ~= "" and 1 or 0) + (b.value ~= "" and 1 or 0)
      if n ~= 1 then
        return nil, "exactly one of label, source or value must be set"
      end
    end,
  },
  new = function(a)
    return function(list)
      for i = 1, #list do
        local e = list[i]
        local t
        if a.value ~= "" then
          t = a.value
        elseif a.source ~= "" then
          t = str(e.extracted[a.source])
        else
          t = e.labels[a.label]
        end
        if t and t ~= "" then
          set_label(e, "__tenant_id__", t)
        end
      end
      return list
    end
  end,
})

stage("pack", {
  doc = "Packs the line and the extracted values of labels into a JSON object ({\"name\":\"value\",...,"
    .. "\"_entry\":\"line\"}, names sorted) that becomes the line; those that are labels are removed from "
    .. "the entry's labels.",
  schema = {
    args = {
      labels = { type = "list", of = { type = "string" }, required = true,
        doc = "Extracted values (labels included) to pack." },
      ingest_timestamp = { type = "bool", default = true,
        doc = "Set the entry's timestamp to now (packed entries of a stream then stay in order)." },
    },
  },
  new = function(a, env)
    local names, seen = {}, {}
    for _, n in ipairs(a.labels) do
      if not seen[n] then
        seen[n] = true
        names[#names + 1] = n
      end
    end
    table.sort(names)
    local enc, now_ts = values.go_json_string, a.ingest_timestamp
    return function(list)
      local now = now_ts and env.now()
      local sec, nsec
      if now then
        sec = math.floor(now)
        nsec = math.min(math.floor((now - sec) * 1e9 + 0.5), 999999999)
      end
      for i = 1, #list do
        local e = list[i]
        local ex = e.extracted
        local parts = {}
        for k = 1, #names do
          local v = str(ex[names[k]])
          if v ~= nil then
            parts[#parts + 1] = enc(names[k]) .. ":" .. enc(v)
            if e.labels[names[k]] ~= nil then
              set_label(e, names[k], nil)
            end
          end
        end
        parts[#parts + 1] = '"_entry":' .. enc(e.line)
        e.line = "{" .. table.concat(parts, ",") .. "}"
        if now then
          e.sec, e.nsec = sec, nsec
        end
      end
      return list
    end
  end,
})

-- output, template, decolorize ----------------------------------------------------------------
stage("output", {
  doc = "Sets the line to an extracted value.",
  schema = { args = { source = { type = "string", required = true, doc = "Extracted value to use as the line." } } },
  new = function(a)
    local source = a.source
    return function(list)
      for i = 1, #list do
        local e = list[i]
        local v = e.extracted[source]
        if v ~= nil then
          e.line = str(v)
        end
      end
      return list
    end
  end,
})

stage("template", {
  doc = "Sets an extracted value from a Go template (.Value .Entry .name, if/else/with, Alloy's and Go's "
    .. "functions and sprig's string functions; no variables or range). An empty result removes the value.",
  schema = {
    args = {
      source = { type = "string", required = true, doc = "Extracted value to set (.Value is its current value)." },
      template = { type = "string", required = true, doc = "The Go template." },
    },
    validate = function(b)
      local _, err = gotemplate.compile(b.template)
      if err then
        return nil, "template: " .. err
      end
    end,
  },
  new = function(a, env)
    local tpl = assert(gotemplate.compile(a.template))
    local source = a.source
    return function(list)
      for i = 1, #list do
        local e = list[i]
        local data = extracted_all(e)
        for k, v in pairs(data) do
          data[k] = str(v)
        end
        data.Value = data[source]
        data.Entry = e.line
        local out, err = gotemplate.execute(tpl, data)
        if not out then
          env.log:debug("template failed", { err = err })
        elseif out == "" then
          e.extracted[source] = nil
        else
          e.extracted[source] = out
        end
      end
      return list
    end
  end,
})

stage("decolorize", {
  doc = "Removes ANSI color codes from the line.",
  schema = { args = {} },
  new = function()
    return function(list)
      for i = 1, #list do
        local e = list[i]
        if e.line:find("\27[", 1, true) then
          e.line = e.line:gsub("\27%[[%d;]*m", "")
        end
      end
      return list
    end
  end,
})

-- timestamp ----------------------------------------------------------------------------

local FUDGE_MAX = 10000 -- streams whose last timestamp the fudge action remembers

stage("timestamp", {
  doc = "Sets the entry's timestamp from an extracted value parsed with a Go layout (or RFC3339, "
    .. "RFC3339Nano, Unix, UnixMs, UnixUs, UnixNs and Go's other named layouts).",
  schema = {
    args = {
      source = { type = "string", required = true, doc = "Extracted value to parse." },
      format = { type = "string", required = true,
        doc = "Go layout (reference time Mon Jan 2 15:04:05 -0700 MST 2006) or a named one." },
      fallback_formats = { type = "list", of = { type = "string" }, default = {}, doc = "Formats tried after format." },
      location = { type = "string", default = "", doc = "IANA time zone of values without an offset (\"\": UTC)." },
      action_on_failure = { type = "string", default = "fudge", enum = { "fudge", "skip" },
        doc = "fudge: the stream's last timestamp plus 1ns; skip: keep the entry's timestamp." },
      action_on_duplicate_timestamp = { type = "string", default = "fudge", enum = { "fudge", "keep" },
        doc = "When the parsed timestamp equals the stream's last parsed one: fudge: the stream's last "
          .. "timestamp plus 1ns (order kept in Loki); keep: the parsed timestamp." },
    },
    validate = function(b)
      if b.format == "" then
        return nil, "format must not be empty"
      end
      if b.location ~= "" then
        local _, err = gotime.zone(b.location)
        if err then
          return nil, "location: " .. err
        end
      end
    end,
  },
  new = function(a, env)
    local formats = { gotime.compile(a.format) }
    for _, f in ipairs(a.fallback_formats) do
      formats[#formats + 1] = gotime.compile(f)
    end
    local loc = a.location ~= "" and assert(gotime.zone(a.location)) or nil
    local source, fudge = a.source, a.action_on_failure == "fudge"
    local dup_fudge = a.action_on_duplicate_timestamp == "fudge"
    local remember = fudge or dup_fudge
    -- stream key -> the last timestamp given (last_s, last_n) and the last one parsed (last_ps, last_pn)
    local last_s, last_n, last_ps, last_pn, nlast = {}, {}, {}, {}, 0
    local parse = gotime.parse
    return function(list)
      local today = os.date("!*t", math.floor(env.now()))
      local year, month = today.year, today.month
      for i = 1, #list do
        local e = list[i]
        local v = str(e.extracted[source])
        local sec, nsec
        if v then
          for k = 1, #formats do
            sec, nsec = parse(formats[k], v, loc, year, month)
            if sec then
              break
            end
          end
        end
        if sec then
          e.sec, e.nsec = sec, nsec
          if remember then
            local key = labels_key(e)
            if not last_s[key] then
              nlast = nlast + 1
              if nlast > FUDGE_MAX then
                last_s, last_n, last_ps, last_pn, nlast = {}, {}, {}, {}, 1
              end
            elseif dup_fudge and last_ps[key] == sec and last_pn[key] == nsec then
              -- the same parsed timestamp as the stream's last entry: 1ns after what that one got
              local s, n = last_s[key], last_n[key] + 1
              if n >= 1000000000 then
                s, n = s + 1, 0
              end
              e.sec, e.nsec = s, n
            end
            last_s[key], last_n[key], last_ps[key], last_pn[key] = e.sec, e.nsec, sec, nsec
          end
        elseif fudge then
          local key = labels_key(e)
          local s = last_s[key]
          if s then
            local n = last_n[key] + 1
            if n >= 1000000000 then
              s, n = s + 1, 0
            end
            e.sec, e.nsec = s, n
            last_s[key], last_n[key] = s, n
          end
        end
      end
      return list
    end
  end,
})

-- drop ---------------------------------------------------------------------------------
local UNITS = { B = 1, KB = 1024, MB = 1024 ^ 2, GB = 1024 ^ 3, TB = 1024 ^ 4, KIB = 1024, MIB = 1024 ^ 2,
  GIB = 1024 ^ 3, TIB = 1024 ^ 4 }
local function bytes(s)
  local n, u = s:match("^%s*(%d+%.?%d*)%s*(%a*)%s*$")
  if not n then
    return nil
  end
  local m = UNITS[u:upper()] or (u == "" and 1)
  return m and math.floor(tonumber(n) * m) or nil -- whole bytes, as Go's units (int64 of the product)
end

stage("drop", {
  doc = "Drops entries for which every condition given holds (counted in loki_process_dropped_lines_total{reason}).",
  schema = {
    args = {
      source = { type = "string", default = "", doc = "Extracted name, or names separated by commas, to test (\"\": the line)." },
      separator = { type = "string", default = ";", doc = "Joins the values of several source names." },
      expression = { type = "string", default = "", doc = "RE2 regex that must match (anywhere)." },
      value = { type = "string", default = "", doc = "Exact value the source must have (with source)." },
      older_than = { type = "duration", doc = "Drop entries with a timestamp older than now minus this." },
      longer_than = { type = "string", default = "", doc = "Drop lines longer than this many bytes (\"8KB\")." },
      drop_counter_reason = { type = "string", default = "drop_stage", doc = "The reason label of the drop counter." },
    },
    validate = function(b)
      if b.source == "" and b.expression == "" and not b.older_than and b.longer_than == "" then
        return nil, "needs at least one of source, expression, older_than or longer_than"
      end
      if b.value ~= "" and b.expression ~= "" then
        return nil, "value and expression are mutually exclusive"
      end
      if b.value ~= "" and b.source == "" then
        return nil, "value needs source"
      end
      if b.expression ~= "" then
        local ok, err = check_regex(b.expression)
        if not ok then
          return nil, "expression: " .. err
        end
      end
      if b.longer_than ~= "" and not bytes(b.longer_than) then
        return nil, string.format("longer_than: %q is not a size (such as 512, 8KB, 1MiB)", b.longer_than)
      end
    end,
  },
  new = function(a, env)
    local re = a.expression ~= "" and assert(regex.new(a.expression)) or nil
    local longer = a.longer_than ~= "" and bytes(a.longer_than) or nil
    local older = a.older_than
    local sources = {}
    for src in a.source:gmatch("[^,]+") do -- split on commas, names kept as written (as Alloy's)
      sources[#sources + 1] = src
    end
    if a.value ~= "" then -- value: the joined sources must be exactly it
      re = assert(regex.new(a.value:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?%{%}|\\]", "\\%0"), true))
    end
    local sep, reason = a.separator, a.drop_counter_reason
    local function should(e, now)
      if longer and #e.line <= longer then
        return false
      end
      if older and e.sec + e.nsec / 1e9 >= now - older then
        return false
      end
      local ex = e.extracted
      if #sources > 0 and not re then -- source alone: every name must be extracted
        for k = 1, #sources do
          if ex[sources[k]] == nil then
            return false
          end
        end
      elseif #sources == 0 and re then
        return re:find(e.line)
      elseif re then -- the names extracted, joined
        local parts = {}
        for k = 1, #sources do
          local v = ex[sources[k]]
          if v ~= nil then
            parts[#parts + 1] = str(v)
          end
        end
        return re:find(table.concat(parts, sep))
      end
      return true
    end
    return function(list)
      local now, any = env.now(), false
      for i = 1, #list do
        local e = list[i]
        if should(e, now) then
          env.drop(e, reason)
          any = true
        end
      end
      return any and compact(list) or list
    end
  end,
})

-- split_json ---------------------------------------------------------------------------
-- The raw text of each element of s, a valid JSON array (whitespace around them left out).
local WS = { [9] = true, [10] = true, [13] = true, [32] = true }
local function json_elements(s)
  local out, depth, pos, start = {}, 0, 1, nil
  local find, sub, byte = string.find, string.sub, string.byte
  while true do
    local i, _, c = find(s, '([%[%]{}",])', pos)
    if not i then
      return out
    end
    if c == '"' then
      local j = i + 1
      while true do -- to the closing quote, over escapes
        local k, _, q = find(s, '(["\\])', j)
        if q == "\\" then
          j = k + 2
        else
          i = k
          break
        end
      end
    elseif c == "[" or c == "{" then
      depth = depth + 1
      if depth == 1 then
        start = i + 1
      end
    elseif c == "]" or c == "}" or c == "," then
      if depth == 1 then
        -- trimmed without a pattern: "(.-)[ \t\r\n]*$" backtracks over every whitespace
        -- run of the element (a string of 1 MiB of spaces took hours)
        local a = find(s, "[^ \t\r\n]", start) or i
        local b = i - 1
        while b >= a and WS[byte(s, b)] do
          b = b - 1
        end
        local el = a < i and sub(s, a, b) or ""
        if el ~= "" or c == "," then -- "[]": no element
          out[#out + 1] = el
        end
        start = i + 1
      end
      if c ~= "," then
        depth = depth - 1
      end
    end
    pos = i + 1
  end
end

stage("split_json", {
  doc = "Splits a top-level JSON array (the line, or an extracted value) into one entry per element, whose "
    .. "line is the element's text; an empty array leaves no entry; anything else passes unchanged.",
  schema = {
    args = {
      source = { type = "string", doc = "Extracted value to split (default: the line).",
        check = nonempty("must not be empty (leave it out to split the line)") },
    },
  },
  new = function(a)
    local source = a.source
    return function(list)
      local out, changed = {}, false
      for i = 1, #list do
        local e = list[i]
        local input = scalar_input_of(e, source)
        local elems
        if input and input:find("^[ \t\r\n]*%[") then
          local ok, data = pcall(strict_decode, input)
          if ok and type(data) == "table" then
            elems = json_elements(input)
          end
        end
        if not elems then
          out[#out + 1] = e
        else
          changed = true
          for _, raw in ipairs(elems) do
            local ex = M.new_extracted(e.labels)
            for k, v in pairs(e.extracted) do -- its own values (the labels it reads come with new_extracted)
              ex[k] = v
            end
            local md = {}
            for k, v in pairs(e.metadata) do
              md[k] = v
            end
            out[#out + 1] = { labels = e.labels, line = raw, sec = e.sec, nsec = e.nsec, metadata = md, extracted = ex }
          end
        end
      end
      return changed and out or list
    end
  end,
})

-- luhn ---------------------------------------------------------------------------------
-- Whether the digit string d passes the Luhn check, as Alloy's: over the value of d (Go's
-- Atoi), so a value past the int64 range never does.
local function luhn_ok(d)
  local v = d:match("^0*(%d*)$")
  if #v > 19 or (#v == 19 and v > "9223372036854775807") then
    return false
  end
  local sum, double = 0, false
  for i = #v, 1, -1 do
    local c = v:byte(i) - 48
    if double then
      c = c * 2
      if c > 9 then
        c = c - 9
      end
    end
    sum, double = sum + c, not double
  end
  return sum % 10 == 0
end

stage("luhn", {
  doc = "Replaces the numbers of the line (or of an extracted value: the line becomes it, as Alloy's) that "
    .. "pass the Luhn check (credit card numbers) with replacement.",
  schema = {
    args = {
      replacement = { type = "string", default = "**REDACTED**", doc = "What a number is replaced with (\"\": the default)." },
      source = { type = "string", doc = "Extracted value to read (default: the line).",
        check = nonempty("empty source") },
      min_length = { type = "int", default = 13, doc = "The fewest digits of a number (below 1: 13)." },
      delimiters = { type = "string", default = "", doc = "Characters taken as part of a number (\"-\": 4242-4242-...)." },
      skip_regex = { type = "string", default = "", check = check_regex,
        doc = "RE2 regex: numbers within its matches (UUIDs, say) are left as they are." },
    },
  },
  new = function(a)
    local replacement = a.replacement ~= "" and a.replacement or "**REDACTED**"
    local min_len = a.min_length >= 1 and a.min_length or 13
    local delims = {}
    for ch in a.delimiters:gmatch("[%z\1-\127\194-\244][\128-\191]*") do
      delims[ch] = true
    end
    local skip = a.skip_regex ~= "" and assert(regex.new(a.skip_regex)) or nil
    local source = a.source
    -- the [start, end) byte ranges skip matches in s (0-based)
    local function skipped(s)
      local out, pos = {}, 0
      while pos <= #s do
        local ov = skip:offsets(s, pos + 1)
        if not ov then
          break
        end
        out[#out + 1] = ov
        pos = ov[1] > ov[0] and ov[1] or ov[1] + 1
      end
      return out
    end
    local function redact(s)
      local out, digits, start, num_end, text_end, trailing = {}, {}, nil, nil, nil, nil
      local skips
      local function flush()
        if start then
          local d = table.concat(digits)
          local keep = true
          if #d >= min_len and luhn_ok(d) then
            keep = false
            if skip then
              skips = skips or skipped(s)
              for _, m in ipairs(skips) do
                if m[0] <= start and num_end <= m[1] then
                  keep = true
                  break
                end
              end
            end
          end
          if keep then
            out[#out + 1] = s:sub(start + 1, text_end)
          else
            out[#out + 1] = replacement
            out[#out + 1] = trailing
          end
        end
        digits, start, trailing = {}, nil, nil
      end
      -- in valid UTF-8 the text up to the next digit goes out as it is, in one piece (byte by
      -- byte, a character is written as read: only an invalid byte becomes U+FFFD)
      local valid = values.is_utf8(s)
      local pos, n = 0, #s
      while pos < n do
        if valid and not start then
          local i = s:find("%d", pos + 1)
          if not i then
            out[#out + 1] = s:sub(pos + 1)
            break
          elseif i > pos + 1 then
            out[#out + 1] = s:sub(pos + 1, i - 1)
            pos = i - 1
          end
        end
        local c = s:byte(pos + 1)
        local w = c < 0x80 and 1 or c >= 0xC2 and c < 0xE0 and 2 or c >= 0xE0 and c < 0xF0 and 3
          or c >= 0xF0 and c < 0xF5 and 4 or 1
        local ch = s:sub(pos + 1, pos + w)
        if w > 1 and not values.is_utf8(ch) then
          w, ch = 1, "\239\191\189" -- as Go's range: an invalid byte is U+FFFD (written as such)
        elseif w == 1 and c >= 0x80 then
          ch = "\239\191\189"
        end
        if c >= 48 and c <= 57 then
          start = start or pos
          digits[#digits + 1] = ch
          num_end, text_end, trailing = pos + 1, pos + 1, nil
        elseif start and delims[ch] then
          text_end, trailing = pos + w, ch
        else
          flush()
          out[#out + 1] = ch
        end
        pos = pos + w
      end
      flush()
      return table.concat(out)
    end
    return function(list)
      for i = 1, #list do
        local e = list[i]
        local input = e.line
        if source then
          input = e.extracted[source]
        end
        if type(input) == "string" then
          e.line = redact(input)
        end
      end
      return list
    end
  end,
})

-- eventlogmessage ----------------------------------------------------------------------
-- Alloy's SanitizeFullLabelName: each character that may not be in a label name is "_".
local function sanitize_label_name(k)
  if k == "" then
    return "_"
  end
  local out, i = {}, 0
  for ch in k:gmatch("[%z\1-\127\192-\255][\128-\191]*") do
    out[#out + 1] = (ch:find("^[%a_]$") or (i > 0 and ch:find("^%d$"))) and ch or "_"
    i = i + #ch
  end
  return table.concat(out)
end

stage("eventlogmessage", {
  doc = "Reads the `Key: value` lines (CRLF-separated) of a Windows Event Log message (an extracted value) "
    .. "into extracted values; a key that is not a label name is sanitized (or skipped with "
    .. "drop_invalid_labels), one already extracted gets the suffix _extracted unless overwrite_existing.",
  schema = {
    args = {
      source = { type = "string", default = "message", doc = "Extracted value holding the message.",
        check = function(v)
          if not values.is_label_name(v) then
            return nil, string.format("invalid label name: %s", v)
          end
        end },
      drop_invalid_labels = { type = "bool", default = false, doc = "Skip keys that are not label names." },
      overwrite_existing = { type = "bool", default = false, doc = "Overwrite an extracted value of the same key." },
    },
  },
  new = function(a, env)
    local source, drop_invalid, overwrite = a.source, a.drop_invalid_labels, a.overwrite_existing
    return function(list)
      local dropped = false
      for i = 1, #list do
        local e = list[i]
        local ex = e.extracted
        local v = ex[source]
        if type(v) == "table" then -- as Alloy's: a value that is no string drops the entry
          env.drop(e, "eventlogmessage_stage")
          dropped = true
        elseif v ~= nil then
          v = str(v)
          local pos = 1
          while pos <= #v + 1 do
            local crlf = v:find("\r\n", pos, true)
            local line = v:sub(pos, (crlf or #v + 1) - 1)
            pos = crlf and crlf + 2 or #v + 2
            local k, val = line:match("^([^:]*):(.*)$")
            if k then
              local valid = values.is_label_name(k)
              if not valid and not drop_invalid then
                k, valid = sanitize_label_name(k), true
              end
              if valid then
                if ex[k] ~= nil and not overwrite then
                  k = k .. "_extracted"
                end
                val = values.trim_space(val)
                if values.is_utf8(val) then
                  ex[k] = val
                end
              end
            end
          end
        end
      end
      return dropped and compact(list) or list
    end
  end,
})

-- geoip --------------------------------------------------------------------------------
local GEOIP_CITY = {
  { "geoip_city_name", { "city", "names", "en" } },
  { "geoip_country_name", { "country", "names", "en" } },
  { "geoip_country_code", { "country", "iso_code" } },
  { "geoip_continent_name", { "continent", "names", "en" } },
  { "geoip_continent_code", { "continent", "code" } },
  { "geoip_postal_code", { "postal", "code" } },
  { "geoip_timezone", { "location", "time_zone" } },
}

local LATITUDE, LONGITUDE = { "location", "latitude" }, { "location", "longitude" }
local NAMES_EN = { "names", "en" }

local function dig(rec, path)
  for _, k in ipairs(path) do
    if type(rec) ~= "table" then
      return nil
    end
    rec = rec[k]
  end
  return rec
end

stage("geoip", {
  doc = "Looks up an IP address (an extracted value) in a MaxMind database (.mmdb, read by moonwatch) and "
    .. "extracts Alloy's geoip_* values for db_type city, country or asn, and custom_lookups (name -> "
    .. "path in the record, e.g. \"MyCompany.DeptName\").",
  schema = {
    args = {
      db = { type = "string", required = true, doc = "Path of the MaxMind database (opened when the pipeline starts).",
        check = nonempty("db path cannot be empty") },
      source = { type = "string", required = true, doc = "Extracted value holding the IP address.",
        check = nonempty("source cannot be empty") },
      db_type = { type = "string", default = "", enum = { "", "city", "country", "asn" },
        doc = "The database's kind: city, country or asn (\"\": custom_lookups only)." },
      custom_lookups = { type = "map", of = { type = "string" }, optional = true,
        doc = "Extracted name -> JMESPath in the record (\"\": the name)." },
    },
    validate = function(b)
      if b.db_type == "" and not b.custom_lookups then
        return nil, "db type or values need to be set"
      end
      for name, expr in pairs(b.custom_lookups or {}) do
        local _, err = jmespath.compile(expr ~= "" and expr or name)
        if err then
          return nil, string.format("custom_lookups[%q]: %s", name, err)
        end
      end
    end,
  },
  new = function(a, env)
    local mmdb = require("loki.process.mmdb")
    local db = assert(mmdb.open(a.db))
    local source, kind = a.source, a.db_type
    local lookups = {}
    for name, expr in pairs(a.custom_lookups or {}) do
      lookups[#lookups + 1] = { name, (jmespath.compile(expr ~= "" and expr or name)) }
    end
    -- address -> record (false: none, NOT_IP: no address), a few thousand at most: a cached
    -- address is neither parsed nor looked up again
    local cache, ncache, NOT_IP = {}, 0, {}
    local function record(ip)
      local r = cache[ip]
      if r == nil then
        local res
        if not mmdb.parse_ip(ip) then
          res = NOT_IP
        else
          local ok
          ok, res = pcall(db.lookup, db, ip)
          if not ok then
            env.log:error("unable to look up the ip", { ip = ip, err = res })
            res = nil
          end
        end
        r = res or false
        if ncache >= 4096 then
          cache, ncache = {}, 0
        end
        cache[ip], ncache = r, ncache + 1
      end
      return r or nil
    end
    return function(list)
      for i = 1, #list do
        local e = list[i]
        local ex = e.extracted
        local v = ex[source]
        local ip = (type(v) == "string" or type(v) == "number") and str(v) or nil
        local rec = ip and record(ip)
        if rec == NOT_IP then
          env.log:error("source is not an ip", { source = ip })
        elseif ip then
          if rec and (kind == "city" or kind == "country") then
            for k = kind == "city" and 1 or 2, kind == "city" and #GEOIP_CITY or 5 do -- country: 2..5
              local f = GEOIP_CITY[k]
              local x = dig(rec, f[2])
              if type(x) == "string" and x ~= "" then
                ex[f[1]] = x
              end
            end
            if kind == "city" then
              local lat, lon = dig(rec, LATITUDE), dig(rec, LONGITUDE)
              lat, lon = tonumber(lat) or 0, tonumber(lon) or 0
              if lat ~= 0 or lon ~= 0 then
                ex.geoip_location_latitude, ex.geoip_location_longitude = lat, lon
              end
              local subs = rec.subdivisions
              local last = type(subs) == "table" and subs[#subs]
              if type(last) == "table" then
                local n, c = dig(last, NAMES_EN), last.iso_code
                if type(n) == "string" and n ~= "" then
                  ex.geoip_subdivision_name = n
                end
                if type(c) == "string" and c ~= "" then
                  ex.geoip_subdivision_code = c
                end
              end
            end
          elseif rec and kind == "asn" then
            local n, o = rec.autonomous_system_number, rec.autonomous_system_organization
            if type(n) == "number" and n ~= 0 then
              ex.geoip_autonomous_system_number = n
            end
            if type(o) == "string" and o ~= "" then
              ex.geoip_autonomous_system_organization = o
            end
          end
          if rec then
            for k = 1, #lookups do
              local x = jmespath.search(lookups[k][2], rec)
              if x ~= nil and x ~= cjson.null then
                ex[lookups[k][1]] = type(x) == "table" and values.json(x) or x
              end
            end
          end
        end
      end
      return list
    end
  end,
})

-- sampling -----------------------------------------------------------------------------
stage("sampling", {
  doc = "Keeps each entry with probability rate, drops the others (counted in "
    .. "loki_process_dropped_lines_total{reason=drop_counter_reason}).",
  schema = {
    args = {
      rate = { type = "number", required = true, min = 0, max = 1,
        doc = "The fraction of entries kept, between 0.0 and 1.0." },
      drop_counter_reason = { type = "string", default = "sampling_stage", doc = "The reason label of the drop counter." },
    },
  },
  new = function(a, env)
    local rate, reason, random = a.rate, a.drop_counter_reason, math.random
    return function(list)
      local any = false
      for i = 1, #list do
        if random() >= rate then -- rate 1 keeps every entry, 0 none
          env.drop(list[i], reason)
          any = true
        end
      end
      return any and compact(list) or list
    end
  end,
})

-- truncate -----------------------------------------------------------------------------
-- s cut to at most n bytes, at the start of a UTF-8 character (a label or metadata value
-- must stay UTF-8: Alloy cuts at the byte, leaving an invalid value)
local function utf8_cut(s, n)
  while n > 0 do
    local c = s:byte(n + 1)
    if not c or c < 0x80 or c >= 0xC0 then
      break
    end
    n = n - 1
  end
  return s:sub(1, n)
end

local TRUNCATE_RULE = { args = {
  limit = { type = "string", required = true, doc = "The most bytes a value keeps, its suffix included (\"12B\", \"1KiB\")." },
  suffix = { type = "string", default = "", doc = "Appended to a value that was truncated." },
  sources = { type = "list", of = { type = "string" }, default = {},
    doc = "The names to truncate (default: all of source_type); not with source_type line." },
  source_type = { type = "string", default = "line", enum = { "line", "label", "structured_metadata", "extracted" },
    doc = "What is truncated: the line, labels, structured metadata or extracted values." },
}, validate = function(r)
  local n = bytes(r.limit)
  if not n then
    return nil, string.format("limit: %q is not a size (such as 512B, 8KB, 1MiB)", r.limit)
  elseif n <= 0 then
    return nil, "limit must be greater than zero"
  elseif r.source_type == "line" and #r.sources > 0 then
    return nil, "sources cannot be set when source_type is 'line'"
  elseif #r.suffix > 0 and n <= #r.suffix then
    return nil, "suffix length cannot be greater than or equal to limit"
  end
end }

stage("truncate", {
  doc = "Truncates the line, labels, structured metadata or extracted values longer than a rule's limit "
    .. "(the extracted value truncated lists the fields truncated; loki_process_truncated_fields_total{field}).",
  schema = {
    args = { rule = { type = "block", repeated = true, required = true, schema = TRUNCATE_RULE,
      doc = "A rule: limit, suffix, sources, source_type; applied in order." } },
  },
  new = function(a, env)
    local count = env.counter("loki_process_truncated_fields_total", "A count of all log lines, labels, extracted "
      .. "values, or structured_metadata truncated as a result of a pipeline stage", { "field" })
    local counters = {}
    for _, f in ipairs({ "line", "label", "structured_metadata", "extracted" }) do
      counters[f] = count(f)
    end
    local rules = {}
    for i, r in ipairs(a.rule) do
      local sources = {}
      for _, n in ipairs(r.sources) do
        sources[n] = true
      end
      rules[i] = { keep = bytes(r.limit) - #r.suffix, suffix = r.suffix, type = r.source_type,
        sources = #r.sources > 0 and sources or nil }
    end
    -- done: the fields truncated so far for the entry (nil: none); returns it with field added
    local function mark(done, field)
      counters[field]:inc()
      done = done or {}
      done[field] = true
      return done
    end
    -- extracted value k (v) of ex truncated by rule r; done as mark leaves it
    local function cut(done, ex, k, v, r)
      if type(v) == "string" and #v > r.keep then
        ex[k] = v:sub(1, r.keep) .. r.suffix
        return mark(done, "extracted")
      end
      return done
    end
    return function(list)
      for i = 1, #list do
        local e = list[i]
        local done
        for _, r in ipairs(rules) do
          local keep, t, sources = r.keep, r.type, r.sources
          if t == "line" then
            if #e.line > keep then
              e.line = e.line:sub(1, keep) .. r.suffix
              done = mark(done, "line")
            end
          elseif t == "label" then
            for k, v in pairs(e.labels) do
              if (not sources or sources[k]) and #v > keep then
                set_label(e, k, utf8_cut(v, keep) .. r.suffix)
                done = mark(done, "label")
              end
            end
          elseif t == "structured_metadata" then
            local md = e.metadata
            for k, v in pairs(md) do
              if (not sources or sources[k]) and #v > keep then
                md[k] = utf8_cut(v, keep) .. r.suffix
                done = mark(done, "structured_metadata")
              end
            end
          elseif sources then
            local ex = e.extracted
            for k in pairs(sources) do
              done = cut(done, ex, k, ex[k], r)
            end
          else
            done = fold_extracted(e, cut, done, r)
          end
          if done then -- as Alloy's: after each rule, the fields truncated so far, sorted
            local prev = e.extracted.truncated
            if type(prev) == "string" then
              for f in prev:gmatch("[^,]+") do
                done[f] = true
              end
            end
            local names = {}
            for f in pairs(done) do
              names[#names + 1] = f
            end
            table.sort(names)
            e.extracted.truncated = table.concat(names, ",")
          end
        end
      end
      return list
    end
  end,
})

-- match --------------------------------------------------------------------------------
stage("match", {
  doc = "Runs its nested stages on the entries that a LogQL selector ({label=\"v\", ...} with =, !=, =~, !~, "
    .. "then line filters |= != |~ !~) matches, or drops them (action \"drop\").",
  schema = {
    positional = "stage",
    args = {
      selector = { type = "string", required = true, check = function(v)
        local _, err = selector.compile(v)
        return err and ("invalid selector: " .. err) or nil
      end, doc = "LogQL stream selector, optionally with line filters." },
      action = { type = "string", default = "keep", enum = { "keep", "drop" },
        doc = "keep: run the nested stages on matching entries; drop: drop them." },
      drop_counter_reason = { type = "string", default = "match_stage", doc = "The reason label of the drop counter." },
      pipeline_name = { type = "string", default = "", doc = "A name for the nested pipeline (shown in debug info)." },
      stage = STAGE_LIST,
    },
    validate = function(b)
      if b.action == "keep" and #b.stage == 0 then
        return nil, "action \"keep\" needs nested stages"
      elseif b.action == "drop" and #b.stage > 0 then
        return nil, "action \"drop\" takes no nested stages"
      end
    end,
  },
  new = function(a, env)
    local sel = assert(selector.compile(a.selector))
    local matches = selector.matches
    if a.action == "drop" then
      local reason = a.drop_counter_reason
      return function(list)
        local any = false
        for i = 1, #list do
          local e = list[i]
          if matches(sel, e.labels, e.line) then
            env.drop(e, reason)
            any = true
          end
        end
        return any and compact(list) or list
      end
    end
    local nested = env.compile(a.stage)
    return function(list)
      local sub, n = {}, 0
      for i = 1, #list do
        local e = list[i]
        if matches(sel, e.labels, e.line) then
          n = n + 1
          sub[n] = e
        end
      end
      if n == 0 then
        return list
      end
      -- what goes on: the entries not matched, and what the nested stages give back (not
      -- the matched entries themselves: a nested multiline, cri or limit merges or holds
      -- them, and a merged entry is a new one)
      local pos = {}
      for i = 1, #list do
        pos[list[i]] = i
      end
      local matched = {}
      for i = 1, n do
        matched[sub[i]] = true
      end
      local res = nested(sub)
      local out = {}
      for i = 1, #list do
        local e = list[i]
        if not matched[e] then
          e.order = i
          out[#out + 1] = e
        end
      end
      for k = 1, #res do
        local e = res[k]
        if not e.dropped then
          e.order = pos[e] or #list + k
          out[#out + 1] = e
        end
      end
      list = out
      -- entries that took different branches may share a stream: keep timestamps in order
      -- (a stable sort, as Alloy's)
      table.sort(list, function(x, y)
        if x.sec ~= y.sec then
          return x.sec < y.sec
        elseif x.nsec ~= y.nsec then
          return x.nsec < y.nsec
        end
        return x.order < y.order
      end)
      return list
    end
  end,
})

-- limit --------------------------------------------------------------------------------
stage("limit", {
  doc = "Rate-limits entries with a token bucket (rate per second, burst); over the limit they are dropped "
    .. "(drop = true) or held back until tokens come (moonwatch holds up to 10 x burst, then drops).",
  schema = {
    args = {
      rate = { type = "number", required = true, positive = true, doc = "Entries per second." },
      burst = { type = "int", required = true, min = 1, doc = "Bucket size." },
      by_label_name = { type = "string", default = "", doc = "Limit each value of this label separately (needs drop)." },
      drop = { type = "bool", default = false, doc = "Drop entries over the limit instead of holding them back." },
      max_distinct_labels = { type = "int", default = 10000, min = 1,
        doc = "Values of by_label_name tracked (at least 10000, as Alloy adjusts it)." },
    },
    validate = function(b)
      if b.by_label_name ~= "" and not b.drop then
        return nil, "by_label_name needs drop = true"
      end
    end,
  },
  new = function(a, env)
    local function bucket()
      return { tokens = a.burst, at = env.monotonic() }
    end
    local function take(bk)
      local now = env.monotonic()
      bk.tokens = math.min(a.burst, bk.tokens + (now - bk.at) * a.rate)
      bk.at = now
      if bk.tokens >= 1 then
        bk.tokens = bk.tokens - 1
        return true
      end
      return false
    end
    local global = bucket()
    local by, nby = {}, 0
    local max_distinct = a.max_distinct_labels
    if a.by_label_name ~= "" and max_distinct < 10000 then
      env.log:warn("stage.limit: max_distinct_labels was adjusted up to the minimal reasonable value of 10000",
        { max_distinct_labels = max_distinct })
      max_distinct = 10000
    end
    local held, max_held = {}, 10 * a.burst
    if not a.drop then
      env.tick(function(force)
        if #held == 0 then
          return
        end
        local out = {}
        if force then -- a stop or a new configuration: what waits goes on now
          out, held = held, {}
        end
        while #held > 0 and take(global) do
          out[#out + 1] = table.remove(held, 1)
        end
        if #out > 0 then
          env.resume(out)
        end
      end)
    end
    return function(list)
      local any = false
      local pass = {}
      for i = 1, #list do
        local e = list[i]
        local bk = global
        if a.by_label_name ~= "" then
          local v = e.labels[a.by_label_name]
          if v == nil then
            bk = nil
          else
            bk = by[v]
            if not bk then
              nby = nby + 1
              if nby > max_distinct then
                by, nby = {}, 1
              end
              bk = bucket()
              by[v] = bk
            end
          end
        end
        if bk and (#held > 0 or not take(bk)) then
          if a.drop then
            env.drop(e, "ratelimit_drop_stage")
            if a.by_label_name ~= "" then
              env.drop_by_label(a.by_label_name, e.labels[a.by_label_name])
            end
            any = true
          elseif #held < max_held then
            held[#held + 1] = e
          else
            env.drop(e, "ratelimit_drop_stage") -- more held back than 10 x burst
          end
        else
          pass[#pass + 1] = e
        end
      end
      if a.drop then
        return any and compact(list) or list
      end
      return pass
    end
  end,
})

-- multiline ----------------------------------------------------------------------------
stage("multiline", {
  doc = "Merges the lines of a stream into blocks that start with a line matching firstline (per stream, as "
    .. "Alloy's): lines before a stream's first firstline pass through; a block goes on when the next one "
    .. "starts, after max_wait_time without a line of its stream, or at max_lines (the lines after it then "
    .. "form a block with the same start: its timestamp, labels and extracted values).",
  schema = {
    args = {
      firstline = { type = "string", required = true, check = check_regex, doc = "RE2 regex of a block's first line." },
      max_wait_time = { type = "duration", default = "3s", positive = true, doc = "How long a block waits for more lines." },
      max_lines = { type = "int", default = 128, min = 1, doc = "Lines of a block at most." },
      trim_newlines = { type = "bool", default = true,
        doc = "Whether each line loses its trailing carriage returns and newlines before it is joined (Alloy's)." },
    },
  },
  new = function(a, env)
    local re = assert(regex.new(a.firstline))
    local trim = a.trim_newlines
    local streams = {} -- stream key -> { start = entry, lines = {}, n = 0, at = monotonic }
    local max_lines, max_wait = a.max_lines, a.max_wait_time
    -- The block of st as one entry (nil when empty); st then waits for more lines.
    local function flush(st)
      if st.n == 0 then
        return nil
      end
      local s0 = st.start
      local ex = setmetatable({}, getmetatable(s0.extracted))
      for k, v in pairs(s0.extracted) do
        ex[k] = v
      end
      local md = {}
      for k, v in pairs(s0.metadata) do
        md[k] = v
      end
      local e = { labels = s0.labels, line = table.concat(st.lines, "\n", 1, st.n), sec = s0.sec, nsec = s0.nsec,
        metadata = md, extracted = ex }
      st.lines, st.n = {}, 0
      return e
    end
    env.tick(function(force)
      local now, out = env.monotonic(), {}
      for k, st in pairs(streams) do
        if force or now - st.at >= max_wait then
          out[#out + 1] = flush(st)
          if force or now - st.at >= 10 * max_wait then
            streams[k] = nil -- idle: forgotten (its next lines pass through until a firstline)
          end
        end
      end
      if #out > 0 then
        table.sort(out, function(x, y)
          return x.sec < y.sec or (x.sec == y.sec and x.nsec < y.nsec)
        end)
        env.resume(out)
      end
    end)
    return function(list)
      local out = {}
      local now = env.monotonic()
      for i = 1, #list do
        local e = list[i]
        local key = labels_key(e)
        local st = streams[key]
        local first = re:find(e.line)
        if not st and not first then
          out[#out + 1] = e -- before the stream's first block
        else
          if not st then
            st = { start = e, lines = {}, n = 0 }
            streams[key] = st
          elseif first then
            out[#out + 1] = flush(st)
            st.start = e
          end
          st.n = st.n + 1
          local line = e.line
          if trim then -- as strings.TrimRight(line, "\r\n"); "[\r\n]+$" backtracked over each run within
            local j = #line
            while j > 0 and (line:byte(j) == 13 or line:byte(j) == 10) do
              j = j - 1
            end
            line = line:sub(1, j)
          end
          st.lines[st.n] = line
          st.at = now
          if st.n >= max_lines then
            out[#out + 1] = flush(st)
          end
        end
      end
      return out
    end
  end,
})

-- metrics ------------------------------------------------------------------------------
local function metric_args(extra)
  local args = {
    name = { type = "string", required = true, doc = "The metric name (after prefix)." },
    prefix = { type = "string", default = "loki_process_custom_", doc = "The prefix of the metric name." },
    description = { type = "string", default = "", doc = "The metric's help text." },
    source = { type = "string", default = "", doc = "Extracted value to use (\"\": the metric name)." },
    value = { type = "string", default = "", doc = "Only entries whose source is exactly this change the metric." },
    max_idle_duration = { type = "duration", default = "5m", min = 1,
      doc = "A series not updated for this long is removed." },
  }
  for k, v in pairs(extra) do
    args[k] = v
  end
  return args
end

local function metric_name_ok(b)
  local full = b.prefix .. b.name
  if not full:match("^[%a_:][%w_:]*$") then
    return nil, string.format("%q is not a valid metric name", full)
  end
end

M.METRIC_SPEC = { type = "tagged", kind = "metric", variants = {
  counter = {
    doc = "A counter: inc (1 per entry) or add (the value, or the line's bytes with count_entry_bytes).",
    args = metric_args({
      action = { type = "string", required = true, enum = { "inc", "add" }, doc = "inc or add." },
      match_all = { type = "bool", default = false, doc = "Count every entry, without looking at source." },
      count_entry_bytes = { type = "bool", default = false, doc = "Add the line's length in bytes." },
    }),
    validate = function(b)
      if b.match_all and b.value ~= "" then
        return nil, "match_all and value are mutually exclusive"
      end
      if b.count_entry_bytes and not (b.match_all and b.action == "add") then
        -- as Alloy's check (its message says "or", its test is "and"): otherwise the bytes
        -- would not be counted (inc counts entries; without match_all the source is added)
        return nil, "count_entry_bytes needs match_all = true and action = \"add\""
      end
      return metric_name_ok(b)
    end,
  },
  gauge = {
    doc = "A gauge: inc, dec, set, add or sub (the value).",
    args = metric_args({
      action = { type = "string", required = true, enum = { "inc", "dec", "set", "add", "sub" },
        doc = "inc, dec, set, add or sub." },
    }),
    validate = metric_name_ok,
  },
  histogram = {
    doc = "A histogram of the values.",
    args = metric_args({
      buckets = { type = "list", of = { type = "number" }, required = true, doc = "Bucket upper bounds, increasing." },
    }),
    validate = function(b)
      for i = 2, #b.buckets do
        if b.buckets[i] <= b.buckets[i - 1] then
          return nil, "buckets must be strictly increasing"
        end
      end
      return metric_name_ok(b)
    end,
  },
} }

local IDLE_CHECK = 1 -- seconds between checks of idle series

stage("metrics", {
  doc = "Defines metrics (metric.counter, metric.gauge, metric.histogram as positional entries) updated from "
    .. "extracted values, on moonwatch's /metrics with the entry's labels and component_id.",
  schema = {
    positional = "metric",
    args = { metric = { type = "list", of = M.METRIC_SPEC, default = {}, doc = "The metrics." } },
    validate = function(b)
      for _, m in ipairs(b.metric) do
        local a = m.args
        local ok, err = custom.check(a.prefix .. a.name, m.tag, a.buckets)
        if not ok then
          return nil, err
        end
      end
    end,
  },
  new = function(a, env)
    local defs = {}
    for _, m in ipairs(a.metric) do
      local d = m.args
      defs[#defs + 1] = { kind = m.tag, name = d.prefix .. d.name, help = d.description,
        source = d.source ~= "" and d.source or d.name, value = d.value, action = d.action,
        match_all = d.match_all, bytes = d.count_entry_bytes, buckets = d.buckets, idle = d.max_idle_duration,
        used = {} }
    end
    custom.reset(env.id) -- a new configuration starts its metrics again (as Alloy's reload)
    local last_check = 0
    env.tick(function()
      local now = env.monotonic()
      if now - last_check < IDLE_CHECK then
        return
      end
      last_check = now
      for _, d in ipairs(defs) do
        for c in pairs(d.used) do
          if now - c.at > d.idle then
            custom.remove(c)
            d.used[c] = nil
          end
        end
      end
    end)
    local function update(d, e, now)
      local f
      if d.kind == "counter" and d.match_all then
        f = d.bytes and #e.line or 1
      else
        local v = e.extracted[d.source]
        if v == nil or (d.value ~= "" and str(v) ~= d.value) then
          return
        end
        if d.bytes then
          f = #e.line
        elseif d.action ~= "inc" and d.action ~= "dec" then
          f = custom.float(v)
          if not f then
            return
          end
        end
      end
      local c = custom.child(d.name, d.kind, d.help, d.buckets, env.id, e.labels)
      c.at = now
      d.used[c] = true
      local ch = c.child
      local act = d.action
      if d.kind == "histogram" then
        ch:observe(f)
      elseif act == "inc" then
        ch:inc()
      elseif act == "dec" then
        ch:add(-1)
      elseif act == "add" then
        if d.kind == "counter" and f < 0 then
          return
        end
        ch:add(f)
      elseif act == "sub" then
        ch:add(-f)
      else -- set
        ch:set(f)
      end
    end
    return function(list)
      local now = env.monotonic()
      local seen = {}
      for i = 1, #list do -- every label name of the batch first: a family widens before its updates
        local l = list[i].labels
        if not seen[l] then
          seen[l] = true
          for k = 1, #defs do
            local d = defs[k]
            custom.prepare(d.name, d.kind, d.help, d.buckets, l)
          end
        end
      end
      for i = 1, #list do
        for k = 1, #defs do
          update(defs[k], list[i], now)
        end
      end
      return list
    end
  end,
})

-- lua ----------------------------------------------------------------------------------
local function valid_entry(e)
  if type(e.line) ~= "string" then
    return nil, "line must be a string, got " .. type(e.line)
  end
  if type(e.labels) ~= "table" or type(e.metadata) ~= "table" or type(e.extracted) ~= "table" then
    return nil, "labels, metadata and extracted must be tables"
  end
  for k, v in pairs(e.labels) do
    if not values.is_label_name(k) and k ~= "__tenant_id__" or type(v) ~= "string" or not values.is_utf8(v) then
      return nil, string.format("label %s: names must be valid label names and values UTF-8 strings", tostring(k))
    end
  end
  for k, v in pairs(e.metadata) do
    if type(k) ~= "string" or type(v) ~= "string" or k:find("\255") or not values.is_utf8(v) then
      return nil, string.format("metadata %s: names and values must be UTF-8 strings", tostring(k))
    end
  end
  if type(e.sec) ~= "number" or type(e.nsec) ~= "number" or e.sec % 1 ~= 0 or e.nsec % 1 ~= 0 or e.nsec < 0
    or e.nsec > 999999999 then
    return nil, "sec and nsec must be whole numbers, nsec in [0, 999999999]"
  end
  return true
end

stage("lua", {
  doc = "Runs a Lua function on each entry (moonwatch's own stage): fn(entry) may change entry.line, "
    .. "entry.labels, entry.metadata, entry.extracted, entry.sec and entry.nsec (the timestamp); returning "
    .. "false drops the entry. It runs with the pipeline-function time budget; an error keeps the entry "
    .. "as it was and is logged.",
  schema = {
    args = {
      fn = { type = "function", required = true, doc = "function(entry) ... end; return false to drop the entry." },
      drop_counter_reason = { type = "string", default = "lua_stage", doc = "The reason label of the drop counter." },
    },
  },
  new = function(a, env)
    local fn, reason = a.fn, a.drop_counter_reason
    return function(list)
      local failed, first_err, any = 0, nil, false
      local n = #list
      local stop, timeout = budget.call(function()
        for i = 1, n do
          local e = list[i]
          local labels = e.labels
          private_labels(e)
          e.extracted = extracted_all(e)
          local line, sec, nsec = e.line, e.sec, e.nsec
          local md, ex = {}, {}
          for k, v in pairs(e.metadata) do
            md[k] = v
          end
          for k, v in pairs(e.extracted) do
            ex[k] = v
          end
          local ok, res = xpcall(fn, debug.traceback, e)
          local err
          if not ok then
            err = errors.report(res, env.id, nil, env.log)
            if budget.is_timeout(err) then
              e.line, e.sec, e.nsec, e.labels, e.metadata, e.extracted = line, sec, nsec, labels, md, ex
              return i, err
            end
          else
            local vok, verr = valid_entry(e)
            if not vok then
              err = "the entry it left is invalid: " .. verr
            end
          end
          if err then
            e.line, e.sec, e.nsec, e.labels, e.metadata, e.extracted = line, sec, nsec, labels, md, ex
            failed = failed + 1
            first_err = first_err or err
          elseif res == false then
            env.drop(e, reason)
            any = true
          end
        end
      end)
      if failed > 0 then
        env.log:error("stage.lua function failed; the entries it failed on go on unchanged",
          { err = first_err, entries = failed })
      end
      if stop then
        env.log:error("stage.lua function took too long; the entries left in this batch go on unchanged",
          { err = timeout, entries = n - stop + 1 })
      end
      return any and compact(list) or list
    end
  end,
})

return M
