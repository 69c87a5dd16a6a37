-- A strict reader of the Prometheus text exposition format (0.0.4), for the
-- specs: it refuses what the format does not allow rather than guessing.
--
--   local exposition = require "support.exposition"
--   local doc = exposition.parse(text)     -- raises, naming the line, on any fault
--   doc.families["dms_ops_dms_calls_total"].samples[1]  -- {name=, labels= {..}, value=}
--   exposition.value(doc, "dms_ops_dms_calls_total", { operation = "StartReplication" })
--
-- Checked: every line is a HELP, a TYPE, another comment or a sample; metric
-- and label names follow the grammar; label values use only the escapes \\,
-- \" and \n; HELP and TYPE come at most once per family and before its
-- samples; the samples of a family are contiguous (a family never comes
-- back); no series twice; counters end in _total; each histogram series has
-- buckets in increasing le order ending with le="+Inf", cumulative counts,
-- a _count equal to the +Inf bucket and a _sum; the text ends with a newline.
local M = {}

local NAME = "^[a-zA-Z_:][a-zA-Z0-9_:]*$"
local LABEL = "^[a-zA-Z_][a-zA-Z0-9_]*$"
local TYPES = { counter = true, gauge = true, histogram = true, summary = true, untyped = true }

local function number(s)
  if s == "+Inf" or s == "Inf" then return math.huge end
  if s == "-Inf" then return -math.huge end
  if s == "NaN" then return 0 / 0 end
  -- decimal only (tonumber would take hexadecimal too)
  if not s:match("^[-+]?%d*%.?%d*[eE]?[-+]?%d*$") or not s:match("%d") then return nil end
  return tonumber(s)
end
M.number = number

-- the family a sample name belongs to, given the TYPEs seen
local function family_of(name, types)
  if types[name] then return name end
  for _, suffix in ipairs({ "_bucket", "_sum", "_count" }) do
    local base = name:sub(1, -#suffix - 1)
    if name:sub(-#suffix) == suffix and (types[base] == "histogram" or types[base] == "summary") then
      return base
    end
  end
  return name
end

-- '{a="x",b="y\"z"}' at position i -> labels table, next position
local function read_labels(line, i, where)
  local labels, order = {}, {}
  assert(line:sub(i, i) == "{", where .. ": expected {")
  i = i + 1
  if line:sub(i, i) == "}" then return labels, order, i + 1 end
  while true do
    local name, after = line:match("^([^=]*)=()", i)
    assert(name and name:match(LABEL), where .. ": bad label name near " .. line:sub(i, i + 20))
    assert(labels[name] == nil, where .. ": label " .. name .. " twice")
    i = after
    assert(line:sub(i, i) == '"', where .. ": label value of " .. name .. " not quoted")
    i = i + 1
    local out = {}
    while true do
      local c = line:sub(i, i)
      assert(c ~= "", where .. ": unterminated label value of " .. name)
      if c == "\\" then
        local n = line:sub(i + 1, i + 1)
        if n == "\\" then out[#out + 1] = "\\"
        elseif n == '"' then out[#out + 1] = '"'
        elseif n == "n" then out[#out + 1] = "\n"
        else error(where .. ": bad escape \\" .. n .. " in the value of " .. name) end
        i = i + 2
      elseif c == '"' then
        i = i + 1
        break
      else
        out[#out + 1] = c
        i = i + 1
      end
    end
    labels[name] = table.concat(out)
    order[#order + 1] = name
    local c = line:sub(i, i)
    if c == "," then
      i = i + 1
      if line:sub(i, i) == "}" then return labels, order, i + 1 end
    elseif c == "}" then
      return labels, order, i + 1
    else
      error(where .. ": expected , or } after the value of " .. name)
    end
  end
end

local function series_key(name, labels)
  local keys = {}
  for k in pairs(labels) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = { name }
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. labels[k] end
  return table.concat(parts, "\0")
end
M.series_key = series_key

local function check_histograms(doc)
  for fname, f in pairs(doc.families) do
    if f.type == "histogram" then
      local series = {}
      for _, s in ipairs(f.samples) do
        local base = {}
        for k, v in pairs(s.labels) do if k ~= "le" then base[k] = v end end
        local key = series_key(fname, base)
        series[key] = series[key] or { buckets = {} }
        local h = series[key]
        if s.name == fname .. "_bucket" then
          assert(s.labels.le, fname .. ": a bucket without le")
          h.buckets[#h.buckets + 1] = { le = number(s.labels.le), count = s.value, text = s.labels.le }
        elseif s.name == fname .. "_sum" then h.sum = s.value
        elseif s.name == fname .. "_count" then h.count = s.value
        else error(fname .. ": histogram sample " .. s.name) end
      end
      for key, h in pairs(series) do
        local where = key:gsub("%z", " ")
        assert(#h.buckets > 0, where .. ": no buckets")
        assert(h.sum, where .. ": no _sum")
        assert(h.count, where .. ": no _count")
        for i = 2, #h.buckets do
          assert(h.buckets[i].le > h.buckets[i - 1].le, where .. ": le not increasing at " .. h.buckets[i].text)
          assert(h.buckets[i].count >= h.buckets[i - 1].count, where .. ": buckets not cumulative at le="
            .. h.buckets[i].text)
        end
        local last = h.buckets[#h.buckets]
        assert(last.text == "+Inf", where .. ": the last bucket is le=" .. last.text .. ", not +Inf")
        assert(last.count == h.count, where .. ": the +Inf bucket (" .. last.count .. ") is not _count ("
          .. h.count .. ")")
        h.labels_key = key
      end
      f.series = series
    end
  end
end

-- text -> {families = {name = {type=, help=, samples = {...}}}, order = {names}, samples = {all}}
function M.parse(text)
  assert(type(text) == "string", "no text")
  assert(text == "" or text:sub(-1) == "\n", "the exposition does not end with a newline")
  local doc = { families = {}, order = {}, samples = {} }
  local types, closed, seen = {}, {}, {}
  local current
  local n = 0
  local function family(name)
    local f = doc.families[name]
    if not f then
      f = { name = name, samples = {} }
      doc.families[name] = f
      doc.order[#doc.order + 1] = name
    end
    return f
  end
  local function enter(name, where)
    if current ~= name then
      assert(not closed[name], where .. ": family " .. name .. " comes back after another family")
      if current then closed[current] = true end
      current = name
    end
  end
  for line in text:gmatch("([^\n]*)\n") do
    n = n + 1
    local where = "line " .. n
    if line:match("^#") then
      local kind, name, rest = line:match("^# (%u+) (%S+) ?(.*)$")
      if kind == "HELP" then
        assert(name:match(NAME), where .. ": bad metric name " .. name)
        enter(name, where)
        local f = family(name)
        assert(f.help == nil, where .. ": second HELP for " .. name)
        assert(#f.samples == 0, where .. ": HELP after samples of " .. name)
        assert(not rest:find("\\[^\\n]"), where .. ": bad escape in HELP")
        f.help = rest:gsub("\\(.)", { ["\\"] = "\\", n = "\n" })
      elseif kind == "TYPE" then
        assert(name:match(NAME), where .. ": bad metric name " .. name)
        assert(TYPES[rest], where .. ": bad type " .. tostring(rest))
        enter(name, where)
        local f = family(name)
        assert(f.type == nil, where .. ": second TYPE for " .. name)
        assert(#f.samples == 0, where .. ": TYPE after samples of " .. name)
        f.type = rest
        types[name] = rest
      end
    elseif not line:match("^%s*$") then     -- the format allows empty lines
      local name, i = line:match("^([a-zA-Z_:][a-zA-Z0-9_:]*)()")
      assert(name, where .. ": not a sample: " .. line)
      local labels, order = {}, {}
      if line:sub(i, i) == "{" then labels, order, i = read_labels(line, i, where) end
      local value_text, ts = line:sub(i):match("^ (%S+)%s*(%S*)$")
      assert(value_text, where .. ": no value: " .. line)
      local value = number(value_text)
      assert(value, where .. ": bad value " .. value_text)
      assert(ts == "" or ts:match("^%-?%d+$"), where .. ": bad timestamp " .. ts)
      local fname = family_of(name, types)
      enter(fname, where)
      local f = family(fname)
      f.type = f.type or "untyped"
      if f.type == "counter" then
        assert(name:match("_total$"), where .. ": counter sample " .. name .. " does not end in _total")
      end
      local key = series_key(name, labels)
      assert(not seen[key], where .. ": series repeated: " .. line)
      seen[key] = true
      local s = { name = name, labels = labels, label_order = order, value = value, family = fname }
      f.samples[#f.samples + 1] = s
      doc.samples[#doc.samples + 1] = s
    end
  end
  check_histograms(doc)
  return doc
end

-- the samples of `name` whose labels include `labels`
function M.find(doc, name, labels)
  local out = {}
  for _, s in ipairs(doc.samples) do
    if s.name == name then
      local ok = true
      for k, v in pairs(labels or {}) do
        if s.labels[k] ~= v then ok = false break end
      end
      if ok then out[#out + 1] = s end
    end
  end
  return out
end

-- the value of the one sample of `name` with `labels` (0 when there is none)
function M.value(doc, name, labels)
  local found = M.find(doc, name, labels)
  assert(#found <= 1, #found .. " samples of " .. name .. " match")
  return found[1] and found[1].value or 0
end

return M
