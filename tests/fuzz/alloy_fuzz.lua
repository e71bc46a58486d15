-- A mutation fuzzer for the Alloy configuration parser, loader and converter (they are
-- Lua: libFuzzer cannot drive them). Run inside the moonwatch VM:
--   moonwatch lua tests/fuzz/alloy_fuzz.lua SECONDS [SEED]     (make fuzz-alloy)
-- Inputs are the corpus (tests/fuzz/corpus/alloy/) mutated: bytes flipped, Alloy tokens
-- inserted, spans deleted, duplicated and spliced. Properties, for every input:
--   - parse never raises; a refusal is "f.alloy:LINE:COL: message";
--   - what parses loads (moonwatch.alloy.loader) without raising, and converts to Lua
--     that Lua's parser accepts, or is refused with a positioned message (when Lua's
--     parser refuses the output, only for its nesting depth);
-- A failing input is written to build/alloy-fuzz-crash-N.alloy and the run exits 1.
local parser = require("moonwatch.alloy.parser")
local loader = require("moonwatch.alloy.loader")
local convert = require("moonwatch.alloy.convert")

local seconds = tonumber(arg[1]) or 60
local seed = tonumber(arg[2]) or os.time()
math.randomseed(seed)
local src_dir = (os.getenv("MOONWATCH_SOURCE_DIR") or ".")
local corpus_dir = src_dir .. "/tests/fuzz/corpus/alloy"

local corpus = {}
local p = io.popen("ls " .. corpus_dir)
for name in p:lines() do
  local f = assert(io.open(corpus_dir .. "/" .. name, "rb"))
  corpus[#corpus + 1] = f:read("*a")
  f:close()
end
p:close()
assert(#corpus > 0, "empty corpus")

local TOKENS = { "{", "}", "[", "]", "(", ")", '"', "`", "\\", "\\u", "\\x4", "\\U0010FFFF", "/*", "*/", "//",
  "\n", "=", "==", ",", ".", "+", "-", "*", "/", "%", "^", "!", "&&", "||", "<=", "null", "true", "1e3", "0x1f",
  "1.5", "a", "local", "end", "stage.json", 'x "l" {', "concat(", "sys.env(", "format(\"%d\", ", "[0]",
  "prometheus.remote_write.x.receiver", "\"\\\"\"", "\0", "\255", "é", ";" }

local function mutate(s)
  local n = math.random(1, 4)
  for _ = 1, n do
    local len = #s
    local r = math.random(1, 6)
    local i = math.random(1, len + 1)
    if r == 1 and len > 0 then
      s = s:sub(1, i - 1) .. string.char(math.random(0, 255)) .. s:sub(i + 1)
    elseif r == 2 or r == 3 then
      s = s:sub(1, i - 1) .. TOKENS[math.random(#TOKENS)] .. s:sub(i)
    elseif r == 4 and len > 0 then
      local j = math.min(len, i + math.random(0, 16))
      s = s:sub(1, i - 1) .. s:sub(j + 1)
    elseif r == 5 and len > 0 then
      local j = math.min(len, i + math.random(0, 32))
      s = s:sub(1, j) .. s:sub(i, j) .. s:sub(j + 1)
    else
      local o = corpus[math.random(#corpus)]
      local a = math.random(1, #o + 1)
      s = s:sub(1, i - 1) .. o:sub(a, a + math.random(0, 64)) .. s:sub(i)
    end
  end
  return s
end

local function check(s)
  local ok, body, err = pcall(parser.parse, s, "f.alloy")
  if not ok then
    return "parse raised: " .. tostring(body)
  end
  if not body then
    if not tostring(err):match("^f%.alloy:%d+:%d+: ") then
      return "unpositioned error: " .. tostring(err)
    end
    return nil
  end
  local lok, res = pcall(loader.load, "f.alloy", { source = s })
  if not lok or not res then
    return "load raised: " .. tostring(res)
  end
  local cok, lua, cerr = pcall(convert.convert, s, "f.alloy")
  if not cok then
    return "convert raised: " .. tostring(lua)
  end
  if lua then
    local chunk, lerr = loadstring(lua, "=converted")
    if not chunk then
      return "converted Lua does not parse: " .. tostring(lerr) .. "\n" .. lua
    end
  elseif not tostring(cerr):match("^f%.alloy:%d+:%d+: ") then
    return "unpositioned convert error: " .. tostring(cerr)
  elseif cerr:find("cannot be written as a Lua pipeline", 1, true) and not (cerr:find("too complex", 1, true)
    or cerr:find("overflow", 1, true) or cerr:find("too many", 1, true)) then
    return "converted Lua refused for another reason than its depth: " .. cerr -- a bug of the converter
  end
  return nil
end

local clock = os.clock
local t0, runs, parsed = clock(), 0, 0
local failures = 0
while clock() - t0 < seconds do
  local s = mutate(corpus[math.random(#corpus)])
  local problem = check(s)
  runs = runs + 1
  if problem then
    failures = failures + 1
    local name = string.format("%s/build/alloy-fuzz-crash-%d.alloy", src_dir, failures)
    local f = io.open(name, "wb")
    if f then
      f:write(s)
      f:close()
    end
    io.stderr:write(string.format("FAIL (%s): %s\n", name, problem))
    if failures >= 5 then
      break
    end
  elseif parser.parse(s, "f.alloy") then
    parsed = parsed + 1
    if #corpus < 2000 and math.random(1, 20) == 1 then
      corpus[#corpus + 1] = s -- inputs that parse are good seeds (kept in memory only)
    end
  end
end
print(string.format("alloy fuzz: seed %d, %d runs in %.0fs, %d parsed, %d failures", seed, runs, clock() - t0,
  parsed, failures))
return failures > 0 and 1 or 0
