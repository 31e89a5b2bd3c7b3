# grokwatch — plain GNU make.  See README.md.
#
#   make [all]           build grokwatchd (runs `make deps` first)
#   make check           build and run every test (unit, cli, reference, fuzz)
#   make check SANITIZE=address,undefined
#   make memcheck        unit and cli tests under valgrind
#   make bench           benchmarks against their peers
#   make demo            the daemon on a generated series of checkpoints
#   make install / uninstall   (PREFIX, DESTDIR honoured)
#   make V=1             show the commands
#
# Dependencies come from pkg-config.  `make deps` installs the Debian
# packages that are missing when run as root, or names them and stops.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
INCLUDEDIR ?= $(PREFIX)/include
DATADIR ?= $(PREFIX)/share
DESTDIR ?=

CC ?= cc
CLANG ?= clang
PYTHON ?= /usr/bin/python3
PKG_CONFIG ?= pkg-config
PKGS := libuv libzmq libcjson openblas

CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wwrite-strings -Wformat=2 -Wvla
WERROR ?= -Werror
SANITIZE ?=
FUZZ_SECONDS ?= 15
TEST_TIMEOUT ?= 900

ifneq ($(SANITIZE),)
B := build/san
SAN_FLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
else
B := build/default
SAN_FLAGS :=
endif

DEP_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
DEP_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) -lm -lpthread

ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(WERROR) $(CFLAGS) $(SAN_FLAGS) \
	$(DEP_CFLAGS) -Iinclude -Idaemon -MMD -MP
ALL_LDFLAGS = $(LDFLAGS) $(SAN_FLAGS)

ifeq ($(V),1)
Q :=
else
Q := @
endif

ENGINE_SRC := $(sort $(wildcard daemon/engine/*.c))
DAEMON_SRC := $(filter-out daemon/main.c,$(sort $(wildcard daemon/*.c)))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
BENCH_SRC := $(sort $(wildcard tests/bench/bench_*.c))
CLIENT_SRC := $(sort $(wildcard client/lib/*.c))
CLI_SRC := $(sort $(wildcard client/cli/*.c))

ENGINE_OBJ := $(ENGINE_SRC:%.c=$(B)/%.o)
CLIENT_OBJ := $(CLIENT_SRC:%.c=$(B)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(B)/%.o)
DAEMON_OBJ := $(DAEMON_SRC:%.c=$(B)/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/unit/%)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(B)/tests/bench/%)

GROKWATCHD := $(B)/grokwatchd
GROKWATCH := $(if $(CLI_SRC),$(B)/grokwatch)
CLIENT_LIB := $(if $(CLIENT_SRC),$(B)/libgrokwatch.a)
CLIENT_SO := $(if $(CLIENT_SRC),$(B)/libgrokwatch.so)
ENGINE_LIB := $(B)/libgwengine.a
DAEMON_LIB := $(B)/libgwdaemon.a
FIXTURES := $(B)/fixtures/.stamp

.SECONDARY:

.PHONY: all build deps deps-test deps-bench check _check memcheck _memcheck \
	bench _bench fuzz demo install uninstall clean

all: deps
	$(Q)$(MAKE) --no-print-directory build

deps:
	$(Q)sh tools/deps.sh build
deps-test:
	$(Q)sh tools/deps.sh build test
deps-bench:
	$(Q)sh tools/deps.sh build test bench

build: $(GROKWATCHD) $(GROKWATCH) $(CLIENT_SO)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The client library: position-independent, only the API exported.
$(B)/client/lib/%.o: client/lib/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<

$(B)/libgrokwatch.a: $(CLIENT_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/libgrokwatch.so: $(CLIENT_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,libgrokwatch.so.0 -o $@ $^ \
		$(shell $(PKG_CONFIG) --libs libzmq libcjson 2>/dev/null)

$(B)/grokwatch: $(CLI_OBJ) $(CLIENT_LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(DEP_LIBS)

$(ENGINE_LIB): $(ENGINE_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(DAEMON_LIB): $(DAEMON_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(GROKWATCHD): $(B)/daemon/main.o $(DAEMON_LIB) $(ENGINE_LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(DEP_LIBS)

$(B)/tests/unit/%: $(B)/tests/unit/%.o $(B)/tests/tap.o $(DAEMON_LIB) $(ENGINE_LIB) $(CLIENT_LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(DEP_LIBS)

$(B)/tests/bench/%: $(B)/tests/bench/%.o $(DAEMON_LIB) $(ENGINE_LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(DEP_LIBS) \
		$(shell $(PKG_CONFIG) --libs edlib-1 2>/dev/null)

# Fuzz targets: always clang with libFuzzer, ASan and UBSan, from the same
# engine sources compiled separately.
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 $(DEP_CFLAGS) -Iinclude -Idaemon \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
build/fuzz/%: tests/fuzz/%.c $(ENGINE_SRC) $(wildcard daemon/engine/*.h)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -o $@ $< $(ENGINE_SRC) $(DEP_LIBS)

$(FIXTURES): tests/fixtures/gen_fixtures.py
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  GEN     $(dir $@)")
	$(Q)rm -rf $(dir $@) && mkdir -p $(dir $@) && \
		$(PYTHON) tests/fixtures/gen_fixtures.py $(dir $@) && touch $@

TEST_ENV = GW_BUILD=$(B) GW_BIN=$(abspath $(GROKWATCHD)) GW_CLI=$(abspath $(B)/grokwatch) \
	GW_FIXTURES=$(abspath $(B)/fixtures) PYTHON=$(PYTHON) \
	GW_FUZZ_SECONDS=$(FUZZ_SECONDS) GW_SRC=$(CURDIR)

SCRIPT_TESTS = $(sort $(wildcard tests/cli/test_*.sh tests/reference/test_*.sh \
	tests/integration/test_*.py))

check: deps-test
	$(Q)$(MAKE) --no-print-directory _check

_check: $(GROKWATCHD) $(GROKWATCH) $(CLIENT_SO) $(UNIT_BIN) $(FUZZ_BIN) $(FIXTURES)
	$(Q)$(TEST_ENV) sh tests/run.sh -t $(TEST_TIMEOUT) $(UNIT_BIN) $(SCRIPT_TESTS) \
		tests/fuzz/run.sh

memcheck: deps-test
	$(Q)$(MAKE) --no-print-directory _memcheck

_memcheck: $(GROKWATCHD) $(GROKWATCH) $(UNIT_BIN) $(FIXTURES)
	$(Q)$(TEST_ENV) GW_WRAP="valgrind -q --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect" \
		sh tests/run.sh -t 3600 -w $(UNIT_BIN) $(SCRIPT_TESTS)

fuzz: $(FUZZ_BIN)
	$(Q)$(TEST_ENV) sh tests/fuzz/run.sh

bench: deps-bench
	$(Q)$(MAKE) --no-print-directory _bench

_bench: $(GROKWATCHD) $(BENCH_BIN) $(FIXTURES)
	$(Q)$(TEST_ENV) sh tests/bench/run.sh $(BENCH_BIN)

demo: deps-test
	$(Q)$(MAKE) --no-print-directory $(GROKWATCHD) $(FIXTURES)
	$(Q)$(TEST_ENV) sh tools/demo.sh

INSTALL_HDR := $(wildcard include/grokwatch.h)

install: build
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(GROKWATCHD) $(DESTDIR)$(BINDIR)/grokwatchd
	$(if $(INSTALL_HDR),install -d $(DESTDIR)$(INCLUDEDIR))
	$(if $(INSTALL_HDR),install -m 0644 include/grokwatch.h $(DESTDIR)$(INCLUDEDIR)/grokwatch.h)

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/grokwatchd $(DESTDIR)$(INCLUDEDIR)/grokwatch.h

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
