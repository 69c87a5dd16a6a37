-- The rockspecs cannot drift: the release rockspec (rockspecs/) builds what the
-- scm one builds, every Lua file of the library is a module of both, and
-- dms._VERSION and dms.workflow._VERSION are the release version.
-- (tools/test.sh installs both with luarocks and loads the result.)
local files = require "support.files"

-- a rockspec read as LuaRocks reads it: a Lua chunk setting globals
local function load_rockspec(path)
  local text = assert(files.read(path), "cannot read " .. path)
  local env = {}
  local chunk = assert(load(text, "@" .. path, "t", env))
  chunk()
  return env
end

local function release_paths()
  local out = {}
  local p = assert(io.popen("ls rockspecs/lua-dms-*.rockspec 2>/dev/null"))
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

describe("rockspecs", function()
  local scm = load_rockspec("lua-dms-scm-1.rockspec")
  local releases = release_paths()

  it("has a release rockspec beside the scm one", function()
    assert.is_true(#releases >= 1)
  end)

  it("gives the release rockspec the scm one's build, dependencies and description", function()
    for _, path in ipairs(releases) do
      local rel = load_rockspec(path)
      assert.are.equal("lua-dms", rel.package)
      assert.are.same(sorted_keys(scm.build.modules), sorted_keys(rel.build.modules), path)
      assert.are.same(scm.build, rel.build, path)
      assert.are.same(scm.dependencies, rel.dependencies, path)
      assert.are.same(scm.external_dependencies, rel.external_dependencies, path)
      assert.are.same(scm.description, rel.description, path)
      assert.are.equal(scm.source.url, rel.source.url, path)
      -- a release names its tag, and its file name its version
      local version = rel.version:match("^(%d+%.%d+%.%d+)%-%d+$")
      assert.is_string(version, rel.version)
      assert.are.equal("v" .. version, rel.source.tag, path)
      assert.is_nil(rel.source.branch)
      assert.are.equal("rockspecs/lua-dms-" .. rel.version .. ".rockspec", path)
    end
  end)

  it("lists every Lua file of the library as a module, at its path", function()
    local listed = {}
    for name, src in pairs(scm.build.modules) do
      if type(src) == "string" then
        listed[src] = name
        assert.is_true(files.exists(src), src)
        local expected = src:gsub("^lua/", ""):gsub("/init%.lua$", ""):gsub("%.lua$", ""):gsub("/", ".")
        assert.are.equal(expected, name)
      end
    end
    local p = assert(io.popen("find lua -name '*.lua' | sort"))
    for path in p:lines() do
      assert.is_string(listed[path], path .. " is not a module of lua-dms-scm-1.rockspec")
    end
    p:close()
  end)

  it("keeps dms._VERSION and dms.workflow._VERSION at the newest release", function()
    local newest
    for _, path in ipairs(releases) do
      local v = load_rockspec(path).version:match("^(%d+%.%d+%.%d+)")
      local function key(s)
        local a, b, c = s:match("(%d+)%.(%d+)%.(%d+)")
        return tonumber(a) * 1e6 + tonumber(b) * 1e3 + tonumber(c)
      end
      if not newest or key(v) > key(newest) then newest = v end
    end
    assert.are.equal(newest, require("dms")._VERSION)
    assert.are.equal(newest, require("dms.workflow")._VERSION)
  end)
end)
