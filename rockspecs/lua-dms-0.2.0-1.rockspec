package = "lua-dms"
version = "0.2.0-1"
source = {
   url = "git+https://github.com/lua-dms/lua-dms.git",
   tag = "v0.2.0",
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
   "luaexpat >= 1.3",   -- STS answers (XML) for roles and web identity
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
      ["dms.dynamodb"] = "lua/dms/dynamodb.lua",
      ["dms.dynamodb_model"] = "lua/dms/dynamodb_model.lua",
      ["dms.credentials"] = "lua/dms/credentials/init.lua",
      ["dms.credentials.cache"] = "lua/dms/credentials/cache.lua",
      ["dms.credentials.http"] = "lua/dms/credentials/http.lua",
      ["dms.credentials.sts"] = "lua/dms/credentials/sts.lua",
      ["dms.credentials.sha1"] = "lua/dms/credentials/sha1.lua",
      ["dms.credentials.env"] = "lua/dms/credentials/env.lua",
      ["dms.credentials.profile"] = "lua/dms/credentials/profile.lua",
      ["dms.credentials.process"] = "lua/dms/credentials/process.lua",
      ["dms.credentials.assume_role"] = "lua/dms/credentials/assume_role.lua",
      ["dms.credentials.web_identity"] = "lua/dms/credentials/web_identity.lua",
      ["dms.credentials.sso"] = "lua/dms/credentials/sso.lua",
      ["dms.credentials.container"] = "lua/dms/credentials/container.lua",
      ["dms.credentials.imds"] = "lua/dms/credentials/imds.lua",
      ["dms.endpoint"] = "lua/dms/endpoint.lua",
      ["dms.endpoint_rules"] = "lua/dms/endpoint_rules.lua",
      ["dms.errors"] = "lua/dms/errors.lua",
      ["dms.model"] = "lua/dms/model.lua",
      ["dms.retry"] = "lua/dms/retry.lua",
      ["dms.transport.curl"] = "lua/dms/transport/curl.lua",
      ["dms.transport.http11"] = "lua/dms/transport/http11.lua",
      ["dms.transport.ngx"] = "lua/dms/transport/ngx.lua",
      ["dms.url"] = "lua/dms/url.lua",
      ["dms.util"] = "lua/dms/util.lua",
      ["dms.workflow"] = "lua/dms/workflow/init.lua",
      ["dms.workflow.replication"] = "lua/dms/workflow/replication.lua",
      ["dms.workflow.phases"] = "lua/dms/workflow/phases.lua",
      ["dms.workflow.journal"] = "lua/dms/workflow/journal.lua",
      ["dms.workflow.journal_dynamodb"] = "lua/dms/workflow/journal_dynamodb.lua",
      ["dms.workflow.session"] = "lua/dms/workflow/session.lua",
      ["dms.workflow.events"] = "lua/dms/workflow/events.lua",
      ["dms.workflow.tables"] = "lua/dms/workflow/tables.lua",
      ["dms.workflow.fleet"] = "lua/dms/workflow/fleet.lua",
      ["dms.runbook"] = "lua/dms/runbook/init.lua",
      ["dms.runbook.format"] = "lua/dms/runbook/format.lua",
      ["dms.runbook.common"] = "lua/dms/runbook/common.lua",
      ["dms.runbook.tables"] = "lua/dms/runbook/tables.lua",
      ["dms.runbook.configs"] = "lua/dms/runbook/configs.lua",
      ["dms.runbook.cdc"] = "lua/dms/runbook/cdc.lua",
      ["dms.runbook.fleet"] = "lua/dms/runbook/fleet.lua",
      ["dms.runbook.table"] = "lua/dms/runbook/table.lua",
      ["dms.runbook.journal"] = "lua/dms/runbook/journal.lua",
   },
   install = {
      bin = { ["dms-runbook"] = "bin/dms-runbook" },
   },
}
