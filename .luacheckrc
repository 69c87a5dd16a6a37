std = "max"
max_line_length = 120
exclude_files = { "lua/dms/model.lua", "lua/dms/dynamodb_model.lua", "lua/dms/endpoint_rules.lua", "build", "luarocks-tree" }
files["spec"] = { std = "max+busted" }
files["examples/nginx"] = { std = "max+ngx_lua" }
files["lua/dms/transport/ngx.lua"] = { std = "max+ngx_lua" }
