-- dms.core's system calls: the atomic write and the lock, in a directory
-- another user could write to (files planted there must never be written
-- through).
local core = require "dms.core"
local files = require "support.files"

describe("core.write_file_atomic", function()
  local dir
  before_each(function() dir = files.tmpdir() end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  it("replaces the file whole and leaves no temporary file", function()
    local path = dir .. "/state.json"
    assert.is_true(core.write_file_atomic(path, "one"))
    assert.is_true(core.write_file_atomic(path, "two"))
    assert.are.equal("two", files.read(path))
    local p = io.popen("ls -A " .. dir)
    local listing = p:read("*a")
    p:close()
    assert.are.equal("state.json\n", listing)
  end)

  it("never writes through a link planted where a temporary file could go", function()
    local path = dir .. "/state.json"
    local victim = dir .. "/victim"
    files.write(victim, "precious")
    -- the name a write of this process used to pick, and a few around it
    for _, name in ipairs({ path .. ".tmp." .. core.pid(), path .. ".tmp", path .. ".tmp.XXXXXX" }) do
      os.execute("ln -s " .. victim .. " " .. name)
    end
    assert.is_true(core.write_file_atomic(path, "state"))
    assert.are.equal("precious", files.read(victim))
    assert.are.equal("state", files.read(path))
  end)

  it("returns an error value when the directory is missing", function()
    local ok, err = core.write_file_atomic(dir .. "/no/such/dir/state.json", "x")
    assert.is_nil(ok)
    assert.are.equal("system", err.kind)
    assert.are.equal("FileError", err.code)
    assert.is_number(err.errno)
    assert.truthy(tostring(err):find("No such file", 1, true))
  end)
end)

describe("core.lock", function()
  local dir
  before_each(function() dir = files.tmpdir() end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  it("refuses a lock file that is a symbolic link, and writes nothing through it", function()
    local victim = dir .. "/victim"
    files.write(victim, "precious")
    os.execute("ln -s " .. victim .. " " .. dir .. "/r.lock")
    local l, err = core.lock(dir .. "/r.lock")
    assert.is_nil(l)
    assert.are.equal("LockFailed", err.code)
    assert.are.equal("precious", files.read(victim))
  end)

  it("refuses a lock file with a second hard link, and writes nothing through it", function()
    local victim = dir .. "/victim"
    files.write(victim, "precious")
    os.execute("ln " .. victim .. " " .. dir .. "/r.lock")
    local l, err = core.lock(dir .. "/r.lock")
    assert.is_nil(l)
    assert.are.equal("LockFailed", err.code)
    assert.truthy(err.message:find("more than one link", 1, true))
    assert.is_nil(err.message:find("symbolic", 1, true))     -- no stale errno text
    assert.are.equal("precious", files.read(victim))
  end)

  it("refuses a directory or a FIFO at the lock path without blocking", function()
    os.execute("mkdir " .. dir .. "/d.lock; mkfifo " .. dir .. "/f.lock")
    for _, name in ipairs({ "/d.lock", "/f.lock" }) do
      local l, err = core.lock(dir .. name)
      assert.is_nil(l, name)
      assert.are.equal("LockFailed", err.code, name)
    end
  end)

  it("holds our pid and is released by release, __gc and __close alike", function()
    local path = dir .. "/r.lock"
    local l = assert(core.lock(path))
    assert.are.equal(tostring(core.pid()) .. "\n", files.read(path))
    l:release()
    l:release()                      -- twice is fine
    local again = assert(core.lock(path))
    again:release()
  end)
end)

describe("core.mkdir", function()
  local dir
  before_each(function() dir = files.tmpdir() end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  it("creates a directory and its missing parents, mode 0700; an existing one is fine", function()
    assert.is_true(core.mkdir(dir .. "/a/b/c"))
    assert.is_true(core.mkdir(dir .. "/a/b/c"))
    assert.is_true(core.write_file_atomic(dir .. "/a/b/c/f", "x"))
    local p = io.popen("stat -c %a " .. dir .. "/a/b")
    assert.are.equal("700", p:read("*l"))
    p:close()
    files.write(dir .. "/file", "x")
    local ok, err = core.mkdir(dir .. "/file/sub")
    assert.is_nil(ok)
    assert.are.equal("FileError", err.code)
    ok, err = core.mkdir(dir .. "/file")
    assert.is_nil(ok)
    assert.are.equal("FileError", err.code)
  end)
end)
