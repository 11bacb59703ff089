# dp -- one flat Makefile.  `make`, `make check`, `make check-cluster`, `make check-asan`,
# `make fuzz`, `make install PREFIX=... DESTDIR=...`, `make uninstall`, `make demo`.

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR   = $(PREFIX)/bin
MANDIR   = $(PREFIX)/share/man/man1
BASHDIR  = $(PREFIX)/share/bash-completion/completions
ZSHDIR   = $(PREFIX)/share/zsh/site-functions
EXDIR    = $(PREFIX)/share/dp/examples

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wno-unused-parameter

# Library flags come from pkg-config (libwebsockets is dp-fetch stream's
# WebSocket client; libmicrohttpd serves --metrics, libsystemd speaks to
# systemd's notify socket).  libjq is the exception: jq 1.7 ships
# libjq.pc, but Debian 12's libjq-dev (jq 1.6) has none, so without it we
# link -ljq by name (its header is in /usr/include; the shared libjq brings
# libonig along by itself).  The flags are asked for at the first compile,
# not when make reads this file, so that `make demo` and `make check` on a
# fresh machine can install the packages (scripts/deps) before anything
# needs them.
PKG_CONFIG ?= pkg-config
PKGS     = rdkafka libpq libcurl libwebsockets libmicrohttpd libsystemd
PKG_JQ   = $(eval PKG_JQ := $$(shell { $(PKG_CONFIG) --exists libjq; } 2>/dev/null && echo libjq))$(PKG_JQ)
pkg_flags = $(or $(shell $(PKG_CONFIG) $(1) $(PKGS) $(PKG_JQ) 2>/dev/null && echo ' '), \
              $(error '$(PKG_CONFIG) $(1) $(PKGS) $(PKG_JQ)' failed: \
              $(shell $(PKG_CONFIG) --print-errors --exists $(PKGS) $(PKG_JQ) 2>&1); \
              scripts/deps installs what is missing))
# Each is asked for once, on first use (a deferred simple variable).
PKG_CFLAGS = $(eval PKG_CFLAGS := $$(call pkg_flags,--cflags))$(PKG_CFLAGS)
PKG_LIBS   = $(eval PKG_LIBS := $$(call pkg_flags,--libs) $$(if $$(PKG_JQ),,-ljq))$(PKG_LIBS)

CPPFLAGS += -D_GNU_SOURCE -DDP_VERSION='"$(VERSION)"' -Ilib $(PKG_CFLAGS)
LDLIBS   = $(PKG_LIBS) -lm -lpthread

# `make SAN=1` (used by check-asan) builds into a separate tree so the
# sanitized and plain objects never mix.
ifeq ($(SAN),1)
CFLAGS  = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
          -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
OBJ      = build/asan
BIN      = build/asan/bin
else
OBJ      = build/obj
BIN      = bin
endif

LIB_SRC  := $(wildcard lib/*/*.c)
LIB_OBJ  := $(LIB_SRC:lib/%.c=$(OBJ)/lib/%.o)
CMD_SRC  := $(wildcard cmd/*.c)
CMDS     := $(CMD_SRC:cmd/%.c=%)
BINS     := $(CMDS:%=$(BIN)/%)
MANS     := $(wildcard man/*.1)

all: $(BINS) $(OBJ)/test_lib

# Unit checks for lib/, run by tests/lib.bats; not installed.
$(OBJ)/test_lib: tests/unit/test_lib.c $(OBJ)/libdp.a
	@echo "  LINK    $@"
	@$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(OBJ)/lib/%.o: lib/%.c $(wildcard lib/*/*.h) Makefile
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -c -o $@ $<

$(OBJ)/cmd/%.o: cmd/%.c $(wildcard lib/*/*.h) Makefile
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -c -o $@ $<

# dp-top --dot draws docs/system.dot (`make diagrams`) with each running
# actor's state marked: the drawing is built into libdp.a as dp_system_dot.
SYSDOT_OBJ = $(OBJ)/lib/obs/system_dot.o

$(SYSDOT_OBJ): docs/system.dot Makefile
	@mkdir -p $(@D)
	@echo "  EMBED   $<"
	@printf '\t.section .rodata\n\t.globl dp_system_dot\n\t.type dp_system_dot, %%object\ndp_system_dot:\n\t.incbin "%s"\n\t.byte 0\n\t.size dp_system_dot, .-dp_system_dot\n\t.section .note.GNU-stack,"",%%progbits\n' \
		'$(CURDIR)/docs/system.dot' | $(CC) -c -x assembler -o $@ -

$(OBJ)/libdp.a: $(LIB_OBJ) $(SYSDOT_OBJ)
	@rm -f $@
	@$(AR) rcsP $@ $^

lib/libdp.a: $(OBJ)/libdp.a
	@cp $< $@

$(BIN)/%: $(OBJ)/cmd/%.o $(OBJ)/libdp.a
	@mkdir -p $(@D)
	@echo "  LINK    $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

deps:
	@scripts/deps --check >/dev/null 2>&1 || scripts/deps

# deps first, then the build, even under -j: on a fresh machine the
# build needs what deps installs.
check: deps
	@$(MAKE) --no-print-directory all fuzz-build
	scripts/check

# Every test of tests/cluster/ on a three-broker cluster of their own
# (scripts/stack up --brokers 3); `make check` runs the ones tagged ci.
check-cluster: deps
	@$(MAKE) --no-print-directory all
	scripts/check --cluster

# The fuzzers run under ASan and UBSan in `make check` already: here
# each replays its corpus (DP_FUZZ_RUNS=0: no fixed pass).
check-asan: deps
	$(MAKE) SAN=1 all
	$(MAKE) fuzz-build
	DP_BIN=$(CURDIR)/build/asan/bin DP_TEST_LIB=$(CURDIR)/build/asan/test_lib \
	DP_FUZZ_RUNS=$${DP_FUZZ_RUNS:-0} \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=70 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/lsan.supp \
	scripts/check

check-valgrind: all
	scripts/valgrind-smoke

# libFuzzer harnesses (fuzz/, see HACKING.md): clang with ASan and UBSan,
# the whole of lib/ built again with coverage for the fuzzer.
# `make fuzz FUZZ_SECONDS=600` fuzzes each target that long (default 30);
# `make check` runs scripts/fuzz --fixed (tests/fuzz.bats).
#
# The fixed pass must go the same way in every run, so nothing but the
# input may steer libFuzzer.  UBSan's pointer-overflow check compares
# addresses as integers, and libFuzzer's -use_cmp hands the operands of
# every comparison to its mutator: with ASLR each run mutated with other
# numbers.  Without that one check (ASan still catches a pointer that
# leaves its object when it is used) it does not; fuzz/main.c does the
# same for the stack's depth.
FUZZ_CC      ?= clang-14
FUZZ_SECONDS ?= 30
FUZZ_CFLAGS   = -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
                -fno-sanitize=pointer-overflow -fno-sanitize-recover=undefined
# libFuzzer without its main(), for fuzz/main.c's (lazy: make all needs no clang)
FUZZ_RT       = $(shell $(FUZZ_CC) -print-runtime-dir)/libclang_rt.fuzzer_no_main-$(shell uname -m).a
FUZZ_TARGETS := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_OBJ     := $(LIB_SRC:lib/%.c=build/fuzz/lib/%.o)
FUZZ_BINS    := $(FUZZ_TARGETS:%=build/fuzz/fuzz-%) build/fuzz/json-verdict

build/fuzz/lib/%.o: lib/%.c $(wildcard lib/*/*.h) Makefile
	@mkdir -p $(@D)
	@echo "  FUZZCC  $<"
	@$(FUZZ_CC) $(CPPFLAGS) $(WARN) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build/fuzz/libdp.a: $(FUZZ_OBJ)
	@rm -f $@
	@$(AR) rcsP $@ $^

build/fuzz/main.o: fuzz/main.c Makefile
	@mkdir -p $(@D)
	@echo "  FUZZCC  $<"
	@$(FUZZ_CC) $(WARN) -O1 -g -c -o $@ $<

build/fuzz/fuzz-%: fuzz/fuzz_%.c fuzz/fuzz.h build/fuzz/main.o build/fuzz/libdp.a
	@echo "  FUZZLD  $@"
	@$(FUZZ_CC) $(CPPFLAGS) -Ifuzz $(WARN) -Wno-missing-prototypes $(FUZZ_CFLAGS) \
		-fsanitize=fuzzer-no-link -o $@ $< build/fuzz/main.o build/fuzz/libdp.a \
		$(FUZZ_RT) -lstdc++ $(LDLIBS)

# The scanner's verdict on files, for fuzz/json_reference.py.
build/fuzz/json-verdict: fuzz/json_verdict.c build/fuzz/libdp.a
	@echo "  FUZZLD  $@"
	@$(FUZZ_CC) $(CPPFLAGS) $(WARN) $(FUZZ_CFLAGS) -o $@ $< build/fuzz/libdp.a $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	scripts/fuzz -t $(FUZZ_SECONDS)

# Micro-benchmark of the JSON scanner (see docs/BENCHMARKS.md).
$(OBJ)/json-scan: bench/json-scan.c $(OBJ)/libdp.a
	@echo "  LINK    $@"
	@$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The streamer engine alone (see docs/BENCHMARKS.md).
$(OBJ)/ccstream-feed: bench/ccstream-feed.c $(OBJ)/libdp.a
	@echo "  LINK    $@"
	@$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bench: all $(OBJ)/json-scan $(OBJ)/ccstream-feed
	bench/publish-tail.sh
	bench/stream.sh
	bench/follow-publish.sh
	bench/follow-latency.sh

# dp against psql \copy, timescaledb-parallel-copy and kcat over record sizes
# and partition counts, in one run; the tables go into docs/BENCHMARKS.md.
# BENCH_MATRIX="LINES REPS" (default: 1000000 3); DP_BENCH_* in bench/matrix.sh.
bench-matrix: all
	DP_BENCH_DOC=docs/BENCHMARKS.md bench/matrix.sh $(BENCH_MATRIX)

# The system diagram, from each command's --dot and the hand-kept
# docs/system.links; tests/diagrams.bats fails when the committed one differs.
diagrams: all
	PATH="$(CURDIR)/bin:$$PATH" scripts/diagrams docs/system.links > docs/system.dot.tmp
	mv docs/system.dot.tmp docs/system.dot
	dot -Tsvg docs/system.dot > docs/system.svg.tmp
	mv docs/system.svg.tmp docs/system.svg

demo: deps
	@$(MAKE) --no-print-directory all
	scripts/demo

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR) $(DESTDIR)$(BASHDIR) $(DESTDIR)$(ZSHDIR) \
	        $(DESTDIR)$(EXDIR)/systemd
	install -m 755 $(BINS) $(DESTDIR)$(BINDIR)/
	install -m 644 $(MANS) $(DESTDIR)$(MANDIR)/
	for c in completions/bash/*; do install -m 644 $$c $(DESTDIR)$(BASHDIR)/; done
	for c in completions/zsh/*; do install -m 644 $$c $(DESTDIR)$(ZSHDIR)/; done
	install -m 755 examples/*.sh $(DESTDIR)$(EXDIR)/
	install -m 644 examples/*.crontab $(DESTDIR)$(EXDIR)/
	install -m 644 examples/systemd/* $(DESTDIR)$(EXDIR)/systemd/

uninstall:
	rm -f $(CMDS:%=$(DESTDIR)$(BINDIR)/%)
	rm -f $(MANS:man/%=$(DESTDIR)$(MANDIR)/%)
	rm -f $(patsubst completions/bash/%,$(DESTDIR)$(BASHDIR)/%,$(wildcard completions/bash/*))
	rm -f $(patsubst completions/zsh/%,$(DESTDIR)$(ZSHDIR)/%,$(wildcard completions/zsh/*))
	rm -rf $(DESTDIR)$(EXDIR)

# mandoc -Tlint -Wstyle; only references to other packages' pages may
# remain (scripts/lint-man says why).
lint-man:
	@scripts/lint-man $(MANS)

clean:
	rm -rf build bin lib/libdp.a

.PHONY: all bench bench-matrix deps check check-asan check-cluster check-valgrind demo diagrams fuzz fuzz-build install \
        uninstall clean lint-man
.SECONDARY:
