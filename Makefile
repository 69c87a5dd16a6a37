# lua-dms developer Makefile.
#   make                  build/dms/core.so for Lua 5.4
#   make LUA_VERSION=luajit   build/luajit/dms/core.so for LuaJIT (OpenResty)
#   make test | demo | demo-fleet | demo-hosts | bench | lint | deps | model | clean
LUA_VERSION ?= 5.4
CC ?= cc
LIBFLAG ?= -shared

ifeq ($(LUA_VERSION),luajit)
LUA_INCDIR ?= /usr/include/luajit-2.1
LUA ?= luajit
BUILD_DIR ?= build/luajit
else
LUA_INCDIR ?= /usr/include/lua$(LUA_VERSION)
LUA ?= lua$(LUA_VERSION)
BUILD_DIR ?= build
endif

WARN = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden $(WARN) -I$(LUA_INCDIR) $(CFLAGS)
CORE_LIBS = -lcrypto
CURL_LIBS = -lcurl

# dms.core (signing, shapes, system calls: OpenSSL) and dms.curl (libcurl),
# two modules so that a process sending through cosockets never maps libcurl
CORE_SRCS = module/core.c module/error.c module/json.c module/sigv4.c module/shape.c module/sys.c
CURL_SRCS = module/curl.c module/error.c module/http.c
HDRS = module/compat.h module/error.h module/json.h module/sigv4.h module/shape.h module/sys.h module/http.h
MODULE = $(BUILD_DIR)/dms/core.so
CURL_MODULE = $(BUILD_DIR)/dms/curl.so

# the floor programs of `make bench` (bench/floor/*.c): plain C over libcurl and OpenSSL
BENCH_DIR = build/bench
FLOOR_PROGS = $(BENCH_DIR)/http_floor $(BENCH_DIR)/http_load $(BENCH_DIR)/sign_floor $(BENCH_DIR)/spawn_time
DEV_PATH = LUA_PATH='lua/?.lua;lua/?/init.lua;spec/?.lua;;'

BUSTED = $(LUA) /usr/bin/busted
LUA_ENV = LUA_PATH='lua/?.lua;lua/?/init.lua;spec/?.lua;;' LUA_CPATH='$(BUILD_DIR)/?.so;;'

.PHONY: all luajit test demo demo-fleet demo-hosts bench lint deps model model-dynamodb rockspec clean

all: $(MODULE) $(CURL_MODULE)

$(MODULE): $(CORE_SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LIBFLAG) -o $@ $(CORE_SRCS) $(LDFLAGS) $(CORE_LIBS)

$(CURL_MODULE): $(CURL_SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LIBFLAG) -o $@ $(CURL_SRCS) $(LDFLAGS) $(CURL_LIBS)

# Installs the Debian packages the build, the demo and the tests need (root, or sudo).
deps:
	@sh tools/deps.sh

# the release rockspec is the scm one with a version and a tag (spec/rockspec_spec.lua checks it)
RELEASE = 0.2.0
rockspec:
	sed -e 's/^version = "scm-1"/version = "$(RELEASE)-1"/' -e 's/^   branch = "main",/   tag = "v$(RELEASE)",/' \
	    lua-dms-scm-1.rockspec > rockspecs/lua-dms-$(RELEASE)-1.rockspec

# the DMS model, and the DynamoDB model of the journal (the operations it
# uses, from botocore's DynamoDB model)
DYNAMODB_OPERATIONS = BatchGetItem,CreateTable,DeleteItem,DescribeTable,DescribeTimeToLive,GetItem,PutItem,Scan,UpdateItem,UpdateTimeToLive
model: model-dynamodb
	python3 tools/gen_model.py ../shared/reference/dms/service-2.shapes.json > lua/dms/model.lua

model-dynamodb:
	python3 tools/gen_model.py --operations $(DYNAMODB_OPERATIONS) -o lua/dms/dynamodb_model.lua \
	    "$$(python3 -c 'import botocore, os; print(os.path.dirname(botocore.__file__))')/data/dynamodb/2012-08-10/service-2.json.gz"

# Lua 5.4 and LuaJIT modules; tools/test.sh also builds the sanitizer variants.
luajit:
	$(MAKE) LUA_VERSION=luajit

test: deps all luajit
	-sh tools/dynalite.sh
	sh tools/test.sh

demo: deps all
	sh tools/demo.sh

# a wave of 20 replications through dms-runbook, two of them failing
demo-fleet: deps all
	sh tools/demo_fleet.sh

# one fleet from three processes sharing a DynamoDB journal (dynalite); one is killed midway
demo-hosts: deps all
	sh tools/demo_hosts.sh


$(BENCH_DIR)/%: bench/floor/%.c
	@mkdir -p $(BENCH_DIR)
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L -O2 $(WARN) -o $@ $< -lcurl -lcrypto

# lua-dms against botocore, then against the floor of the machine on Lua 5.4
# and LuaJIT (with the nginx ops endpoint: requests per second, worker memory)
bench: deps all luajit $(FLOOR_PROGS)
	$(LUA_ENV) $(LUA) bench/bench.lua
	$(LUA_ENV) $(LUA) bench/fleet_bench.lua
	$(DEV_PATH) LUA_CPATH='build/?.so;;' lua5.4 bench/hotpath.lua
	$(DEV_PATH) LUA_CPATH='build/luajit/?.so;;' luajit bench/hotpath.lua ngx

lint:
	luacheck lua spec bin examples tools

clean:
	rm -rf build dms module/*.o
