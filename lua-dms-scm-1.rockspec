package = "lua-dms"
version = "scm-1"
source = {
   url = "git+https://github.com/lua-dms/lua-dms.git",
   branch = "main",
}
description = {
   summary = "Drive AWS Database Migration Service (DMS) Serverless replications from Lua",
   detailed = [[
      A C module (SigV4 over OpenSSL, HTTP over libcurl, DMS request and
      response shapes) and a Lua client with credentials, endpoints, standard
      retries and workflow helpers that assess, start, watch and resume DMS
      Serverless replications. Runs on Lua 5.4 and LuaJIT/OpenResty (5.1 ABI).
   ]],
   license = "Apache-2.0",
}
dependencies = {
   "lua >= 5.1",
   "lua-cjson",
   "argparse",          -- bin/dms-runbook
}
external_dependencies = {
   OPENSSL = { header = "openssl/evp.h" },
   CRYPTO = { library = "crypto" },
   CURL = { library = "curl" },  -- Debian keeps curl/curl.h under a multiarch include dir
}
build = {
   type = "builtin",
   modules = {
      ["dms.core"] = {
         sources = { "module/core.c", "module/error.c", "module/json.c", "module/sigv4.c", "module/shape.c", "module/sys.c" },
         defines = { "_POSIX_C_SOURCE=200809L" },
         incdirs = { "$(OPENSSL_INCDIR)" },
         libdirs = { "$(CRYPTO_LIBDIR)" },
         libraries = { "crypto" },
      },
      -- libcurl in a module of its own: loaded on the first request that uses it
      ["dms.curl"] = {
         sources = { "module/curl.c", "module/error.c", "module/http.c" },
         defines = { "_POSIX_C_SOURCE=200809L" },
         incdirs = { "$(CURL_INCDIR)" },
         libdirs = { "$(CURL_LIBDIR)" },
         libraries = { "curl" },
      },
      ["dms"] = "lua/dms/init.lua",
      ["dms.config"] = "lua/dms/config.lua",
      ["dms.credentials"] = "lua/dms/credentials.lua",
      ["dms.endpoint"] = "lua/dms/endpoint.lua",
      ["dms.endpoint_rules"] = "lua/dms/endpoint_rules.lua",
      ["dms.errors"] = "lua/dms/errors.lua",
      ["dms.model"] = "lua/dms/model.lua",
      ["dms.retry"] = "lua/dms/retry.lua",
      ["dms.transport.curl"] = "lua/dms/transport/curl.lua",
      ["dms.transport.ngx"] = "lua/dms/transport/ngx.lua",
      ["dms.workflow"] = "lua/dms/workflow.lua",
   },
   install = {
      bin = { ["dms-runbook"] = "bin/dms-runbook" },
   },
}
