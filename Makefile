# grokwatch — plain GNU make.  See README.md.
#
#   make [all]           build grokwatchd, grokwatch and libgrokwatch; never
#                        installs anything
#   make check           install missing test packages (tools/deps.sh), build,
#                        run every test (unit, cli, reference, fuzz)
#   make check SANITIZE=address,undefined
#   make memcheck        unit and cli tests under valgrind
#   make bench           benchmarks against their peers
#   make demo            the daemon on a generated series of checkpoints
#   make demo-train      the daemon watching a tiny MoE train and grok on the
#                        CPU, then the plot and the correlation table
#                        (SEED=N; DEMO_TRAIN_ARGS passed to the trainer)
#   make docs            regenerate the config file, README key table and
#                        grokwatchd.json(5) KEYS from the config table
#   make deps            install (as root) or name the missing build packages
#   make install / uninstall   (PREFIX, DESTDIR, BINDIR, LIBDIR, INCLUDEDIR,
#                        DATADIR, MANDIR, SYSTEMD_UNITDIR, PYTHONDIR honoured)
#   make V=1             show the commands
#   make DEVELOPER=1     warnings are errors (.ci/run sets it)
#
# Dependencies come from pkg-config.  Only `make check`, `make demo`, `make
# bench` and `make deps` run tools/deps.sh, which installs the Debian
# packages that are missing when run as root, or names them and stops.
# The version is the one line of VERSION.

# Installation directories (GNU names; every one may be set on the command
# line).  The units go to SYSTEMD_UNITDIR, which stays under PREFIX so that
# an unprivileged `make install PREFIX=$$HOME/.local` writes nothing outside
# it; a package for /usr sets PREFIX=/usr, or SYSTEMD_UNITDIR to
# `pkg-config --variable=systemdsystemunitdir systemd`.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
SYSTEMD_UNITDIR ?= $(PREFIX)/lib/systemd/system
# The Python package (client/python/grokwatch), where Debian's python3 finds
# packages for PREFIX=/usr.
PYTHONDIR ?= $(PREFIX)/lib/python3/dist-packages
DESTDIR ?=

CC ?= cc
CLANG ?= clang
PYTHON ?= /usr/bin/python3
PKG_CONFIG ?= pkg-config
PKGS := libuv libzmq libcjson openblas libcurl

CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wwrite-strings -Wformat=2 -Wvla
DEVELOPER ?=
WERROR := $(if $(DEVELOPER),-Werror)
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
# libmicrohttpd serves HTTP for `grokwatch serve`: the tool alone links it.
MHD_CFLAGS := $(shell $(PKG_CONFIG) --cflags libmicrohttpd 2>/dev/null)
MHD_LIBS := $(shell $(PKG_CONFIG) --libs libmicrohttpd 2>/dev/null)

VERSION := $(shell cat VERSION)
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(WERROR) $(CFLAGS) $(SAN_FLAGS) \
	$(DEP_CFLAGS) -Iinclude -Idaemon -MMD -MP -DGW_VERSION='"$(VERSION)"'
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
CLI_OBJ := $(CLI_SRC:%.c=$(B)/%.o) $(B)/client/cli/web.o
WEB_FILES := client/web/index.html client/web/dash.js
DAEMON_OBJ := $(DAEMON_SRC:%.c=$(B)/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/unit/%)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(B)/tests/bench/%)

GROKWATCHD := $(B)/grokwatchd
GROKWATCH := $(B)/grokwatch
CLIENT_LIB := $(B)/libgrokwatch.a
CLIENT_SO := $(B)/libgrokwatch.so
ENGINE_LIB := $(B)/libgwengine.a
DAEMON_LIB := $(B)/libgwdaemon.a
FIXTURES := $(B)/fixtures/.stamp

.SECONDARY:

.PHONY: all build deps deps-test deps-bench check _check memcheck _memcheck \
	bench _bench soak _soak fuzz demo demo-train docs install uninstall clean

all: build

deps:
	$(Q)sh tools/deps.sh build
deps-test:
	$(Q)sh tools/deps.sh build test
deps-bench:
	$(Q)sh tools/deps.sh build test bench

build: $(GROKWATCHD) $(GROKWATCH) $(CLIENT_SO)

# grokwatchd --version is the VERSION file's.
$(B)/daemon/main.o: VERSION

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

$(B)/client/cli/%.o: client/cli/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) $(MHD_CFLAGS) -c -o $@ $<

# The dashboard's page and script, built into the tool (client/cli/web.h).
$(B)/client/cli/web.o: client/cli/web.S $(WEB_FILES)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  AS      $<")
	$(Q)$(CC) $(SAN_FLAGS) -c -o $@ $<

# The tool writes files (plot --svg) through the one atomic write.
$(B)/grokwatch: $(CLI_OBJ) $(CLIENT_LIB) $(B)/daemon/engine/file.o $(B)/daemon/engine/sys.o $(B)/daemon/engine/error.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(MHD_LIBS) $(DEP_LIBS)

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

# The grokwatch tool's option parser, tested alone.
$(B)/tests/unit/test_opts: $(B)/client/cli/opts.o $(B)/client/cli/out.o
# serve's request checks, board and text pieces, tested alone.
$(B)/tests/unit/test_serve: $(B)/client/cli/api.o $(B)/client/cli/board.o $(B)/client/cli/emit.o

# A stand-in daemon (the real publisher, scripted) for the client's tests.
GW_TESTD := $(B)/tests/gw_testd
$(GW_TESTD): $(B)/tests/gw_testd.o $(DAEMON_LIB) $(ENGINE_LIB)
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

# serve's request checks are the tool's, not the engine's.
build/fuzz/fuzz_serve_api: tests/fuzz/fuzz_serve_api.c client/cli/api.c client/cli/emit.c \
		client/cli/api.h client/cli/emit.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -o $@ $< client/cli/api.c client/cli/emit.c $(DEP_LIBS)

$(FIXTURES): tests/fixtures/gen_fixtures.py
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  GEN     $(dir $@)")
	$(Q)rm -rf $(dir $@) && mkdir -p $(dir $@) && \
		$(PYTHON) tests/fixtures/gen_fixtures.py $(dir $@) && touch $@

TEST_ENV = GW_BUILD=$(B) GW_BIN=$(abspath $(GROKWATCHD)) GW_CLI=$(abspath $(B)/grokwatch) \
	GW_FIXTURES=$(abspath $(B)/fixtures) PYTHON=$(PYTHON) \
	GW_FUZZ_SECONDS=$(FUZZ_SECONDS) GW_SRC=$(CURDIR) GW_TESTD=$(abspath $(GW_TESTD))

SCRIPT_TESTS = $(sort $(wildcard tests/cli/test_*.sh tests/reference/test_*.sh \
	tests/integration/test_*.py tests/python/test_*.py))

check: deps-test
	$(Q)$(MAKE) --no-print-directory _check

_check: $(GROKWATCHD) $(GROKWATCH) $(CLIENT_SO) $(GW_TESTD) $(UNIT_BIN) $(FUZZ_BIN) $(FIXTURES)
	$(Q)$(TEST_ENV) sh tests/run.sh -t $(TEST_TIMEOUT) $(UNIT_BIN) $(SCRIPT_TESTS) \
		tests/fuzz/run.sh

memcheck: deps-test
	$(Q)$(MAKE) --no-print-directory _memcheck

_memcheck: $(GROKWATCHD) $(GROKWATCH) $(GW_TESTD) $(UNIT_BIN) $(FIXTURES)
	$(Q)$(TEST_ENV) GW_WRAP="valgrind -q --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect" \
		sh tests/run.sh -t 3600 -w $(UNIT_BIN) $(SCRIPT_TESTS)

# Minutes of random kills, faults, bursts and subscriber churn, then the
# check that nothing was lost or duplicated (tests/soak/soak.py).
# SOAK_SECONDS=N changes its length, SOAK_SEED=N repeats a run.
soak: deps-test
	$(Q)$(MAKE) --no-print-directory _soak

_soak: $(GROKWATCHD)
	$(Q)$(TEST_ENV) $(PYTHON) tests/soak/soak.py

fuzz: $(FUZZ_BIN)
	$(Q)$(TEST_ENV) sh tests/fuzz/run.sh

bench: deps-bench
	$(Q)$(MAKE) --no-print-directory _bench

_bench: $(GROKWATCHD) $(GROKWATCH) $(GW_TESTD) $(BENCH_BIN) $(FIXTURES)
	$(Q)$(TEST_ENV) sh tests/bench/run.sh $(BENCH_BIN)

# The files the config table documents (tools/config_docs.py; make check's
# tests/cli/test_config_docs.sh fails when they differ from the table).
docs: $(GROKWATCHD)
	$(Q)$(PYTHON) tools/config_docs.py --write $(abspath $(GROKWATCHD)) $(CURDIR)

demo: deps-test
	$(Q)$(MAKE) --no-print-directory $(GROKWATCHD) $(FIXTURES)
	$(Q)$(TEST_ENV) sh tools/demo.sh

# A real training run watched live (tools/demo_train.py); make check runs a
# short one (tests/integration/test_demo_train.py), make bench the full one
# for two seeds (tests/bench/bench_demo_train.sh).
SEED ?= 1
demo-train: deps-test
	$(Q)$(MAKE) --no-print-directory $(GROKWATCHD) $(GROKWATCH)
	$(Q)$(TEST_ENV) $(PYTHON) tools/demo_train.py --seed $(SEED) \
		$(if $(DEMO_TRAIN_ARGS),-- $(DEMO_TRAIN_ARGS))

# ---- install / uninstall ---------------------------------------------------
#
# What `make install` puts under $(DESTDIR):
#   BINDIR           grokwatchd, and grokwatch once the client exists
#   LIBDIR           libgrokwatch.a, libgrokwatch.so.VERSION and the links
#                    .so.0 (the soname) and .so; PKGCONFIGDIR/grokwatch.pc
#   INCLUDEDIR       grokwatch.h
#   SYSTEMD_UNITDIR  grokwatchd.service, grokwatchd@.service (ExecStart= is
#                    BINDIR/grokwatchd)
#   DATADIR/grokwatch  grokwatchd.json, the example config at its defaults,
#                    hooks/ with the example alert hooks, and grafana/ with
#                    the dashboard over `grokwatch serve`'s /metrics
# The dashboard page itself is built into grokwatch (client/cli/web.h).
#   MANDIR           grokwatchd(8), grokwatchd.json(5), grokwatch(1)
#   PYTHONDIR        the grokwatch Python package (grokwatch/*.py)
# Nothing goes to /etc: the units read
# /etc/grokwatch/grokwatchd.json or /etc/grokwatch/NAME.json, which the
# administrator writes from the example.  `make uninstall` removes every
# file install may put there and then the two grokwatch directories if they
# are empty; it leaves the shared directories (bin, lib, man/man8, ...) alone.

SO_MAJOR := 0
INSTALL_HOOKS := $(wildcard config/hooks/*)
INSTALL_GRAFANA := $(wildcard config/grafana/*.json)
PY_MODULES := $(sort $(wildcard client/python/grokwatch/*.py))
UNITS := grokwatchd.service grokwatchd@.service
SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
	-e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	-e 's|@VERSION@|$(VERSION)|g'

install: build $(CLIENT_LIB)
	@test -n "$(VERSION)" || { echo "VERSION is empty" >&2; exit 1; }
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSTEMD_UNITDIR) $(DESTDIR)$(DATADIR)/grokwatch \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(GROKWATCHD) $(DESTDIR)$(BINDIR)/grokwatchd
	install -m 0755 $(GROKWATCH) $(DESTDIR)$(BINDIR)/grokwatch
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 0644 $(CLIENT_LIB) $(DESTDIR)$(LIBDIR)/libgrokwatch.a
	install -m 0755 $(CLIENT_SO) $(DESTDIR)$(LIBDIR)/libgrokwatch.so.$(VERSION)
	ln -sf libgrokwatch.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libgrokwatch.so.$(SO_MAJOR)
	ln -sf libgrokwatch.so.$(SO_MAJOR) $(DESTDIR)$(LIBDIR)/libgrokwatch.so
	install -m 0644 include/grokwatch.h $(DESTDIR)$(INCLUDEDIR)/grokwatch.h
	$(SUBST) grokwatch.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/grokwatch.pc
	chmod 0644 $(DESTDIR)$(PKGCONFIGDIR)/grokwatch.pc
	$(SUBST) systemd/grokwatchd.service.in >$(DESTDIR)$(SYSTEMD_UNITDIR)/grokwatchd.service
	$(SUBST) systemd/grokwatchd@.service.in >$(DESTDIR)$(SYSTEMD_UNITDIR)/grokwatchd@.service
	chmod 0644 $(addprefix $(DESTDIR)$(SYSTEMD_UNITDIR)/,$(UNITS))
	install -m 0644 config/grokwatchd.json $(DESTDIR)$(DATADIR)/grokwatch/grokwatchd.json
	$(if $(INSTALL_HOOKS),install -d $(DESTDIR)$(DATADIR)/grokwatch/hooks)
	$(if $(INSTALL_HOOKS),install -m 0755 $(INSTALL_HOOKS) $(DESTDIR)$(DATADIR)/grokwatch/hooks/)
	$(if $(INSTALL_GRAFANA),install -d $(DESTDIR)$(DATADIR)/grokwatch/grafana)
	$(if $(INSTALL_GRAFANA),install -m 0644 $(INSTALL_GRAFANA) $(DESTDIR)$(DATADIR)/grokwatch/grafana/)
	install -m 0644 man/grokwatchd.8 $(DESTDIR)$(MANDIR)/man8/grokwatchd.8
	install -m 0644 man/grokwatchd.json.5 $(DESTDIR)$(MANDIR)/man5/grokwatchd.json.5
	install -d $(DESTDIR)$(MANDIR)/man1
	install -m 0644 man/grokwatch.1 $(DESTDIR)$(MANDIR)/man1/grokwatch.1
	install -d $(DESTDIR)$(PYTHONDIR)/grokwatch
	install -m 0644 $(PY_MODULES) $(DESTDIR)$(PYTHONDIR)/grokwatch/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/grokwatchd $(DESTDIR)$(BINDIR)/grokwatch
	rm -f $(DESTDIR)$(LIBDIR)/libgrokwatch.a $(DESTDIR)$(LIBDIR)/libgrokwatch.so.$(VERSION) \
		$(DESTDIR)$(LIBDIR)/libgrokwatch.so.$(SO_MAJOR) $(DESTDIR)$(LIBDIR)/libgrokwatch.so
	rm -f $(DESTDIR)$(INCLUDEDIR)/grokwatch.h $(DESTDIR)$(PKGCONFIGDIR)/grokwatch.pc
	rm -f $(addprefix $(DESTDIR)$(SYSTEMD_UNITDIR)/,$(UNITS))
	rm -f $(DESTDIR)$(DATADIR)/grokwatch/grokwatchd.json \
		$(addprefix $(DESTDIR)$(DATADIR)/grokwatch/hooks/,$(notdir $(INSTALL_HOOKS))) \
		$(addprefix $(DESTDIR)$(DATADIR)/grokwatch/grafana/,$(notdir $(INSTALL_GRAFANA)))
	rm -f $(DESTDIR)$(MANDIR)/man8/grokwatchd.8 $(DESTDIR)$(MANDIR)/man5/grokwatchd.json.5 \
		$(DESTDIR)$(MANDIR)/man1/grokwatch.1
	rm -f $(addprefix $(DESTDIR)$(PYTHONDIR)/grokwatch/,$(notdir $(PY_MODULES)))
	rm -rf $(DESTDIR)$(PYTHONDIR)/grokwatch/__pycache__
	for d in $(DESTDIR)$(DATADIR)/grokwatch/hooks $(DESTDIR)$(DATADIR)/grokwatch/grafana \
		$(DESTDIR)$(DATADIR)/grokwatch $(DESTDIR)$(PYTHONDIR)/grokwatch; do \
		if [ -d "$$d" ]; then rmdir --ignore-fail-on-non-empty "$$d"; fi; done

clean:
	rm -rf build

# The dependency files of exactly the objects this build makes.
DEP_FILES := $(patsubst %.o,%.d,$(ENGINE_OBJ) $(DAEMON_OBJ) $(CLIENT_OBJ) $(CLI_OBJ) \
	$(B)/daemon/main.o $(B)/tests/tap.o $(B)/tests/gw_testd.o \
	$(UNIT_SRC:%.c=$(B)/%.o) $(BENCH_SRC:%.c=$(B)/%.o))
-include $(DEP_FILES)
