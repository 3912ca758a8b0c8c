# race: `make` builds shim/librace.so and analyze/race; `make run` runs the demo;
# `make test` runs every test. Dependencies come from Debian packages via scripts/deps.sh.
CC      ?= gcc
CFLAGS  ?= -O2 -g
PREFIX  ?= /usr/local
DESTDIR ?=
WARN    := -std=gnu11 -Wall -Wextra -Werror
CPPFLAGS += -Icommon

# shim/probe/ is the probe engine and the debug-info readers: the unit tests link them
# alone; -Ishim/probe lets the rest of the shim include probe.h and debuginfo.h by name.
SHIM_SRC := $(sort $(wildcard shim/*.c shim/probe/*.c))
SHIM_HDR := $(wildcard shim/*.h shim/probe/*.h common/*.h) common/options.def
SHIM_LIBS := -lunwind -ldw -lelf -lZydis -ldl -lpthread
ANA_SRC  := $(sort $(wildcard analyze/*.c))
ANA_HDR  := $(wildcard analyze/*.h common/*.h) common/options.def
ANA_LIBS := -ldw -lelf -lZydis -lm

all: shim/librace.so analyze/race

.deps-stamp: scripts/deps.sh
	scripts/deps.sh
	touch $@

shim/librace.so: $(SHIM_SRC) $(SHIM_HDR) | .deps-stamp
	$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS) -fPIC -shared -fvisibility=hidden \
	    -ftls-model=initial-exec -fno-omit-frame-pointer -D_GNU_SOURCE -Ishim/probe -o $@ $(SHIM_SRC) $(SHIM_LIBS)

analyze/race: $(ANA_SRC) $(ANA_HDR) | .deps-stamp
	$(CC) $(WARN) $(CFLAGS) $(CPPFLAGS) -o $@ $(ANA_SRC) $(ANA_LIBS)

# The analyzer again under AddressSanitizer and UBSan, for the reader's robustness tests.
analyze/race-asan: $(ANA_SRC) $(ANA_HDR) | .deps-stamp
	$(CC) $(WARN) -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
	    -fno-omit-frame-pointer $(CPPFLAGS) -o $@ $(ANA_SRC) $(ANA_LIBS)

# Test programs: tests/NAME.c -> tests/bin/NAME. unit_* tests link shim sources they name.
TEST_SRC := $(sort $(wildcard tests/*.c))
TEST_BIN := $(patsubst tests/%.c,tests/bin/%,$(TEST_SRC))
tests/bin/%: tests/%.c $(SHIM_HDR) | .deps-stamp
	@mkdir -p tests/bin
	$(CC) $(WARN) -O2 -g $(CPPFLAGS) -D_GNU_SOURCE -Ishim -Ishim/probe -o $@ $< $(shell sed -n 's/^ *\* *link: *\([^*]*\).*/\1/p' $<) -lpthread

test: all analyze/race-asan $(TEST_BIN)
	tests/run.sh

smoke: all
	tests/run.sh smoke

run: all
	tests/demo.sh

# Coverage-guided fuzzing of the trace reader (libFuzzer, clang): `make fuzz FUZZ_SECONDS=N`
# reads tests/fuzz-corpus/ and writes what it finds new to tests/out/fuzz-corpus/ and
# any crashing input to tests/out/fuzz-crash-*; `make test` replays the kept corpus
# (tests/t_fuzz_replay.sh). Keep a new input with `cp` into tests/fuzz-corpus/.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SRC     := $(filter-out analyze/main.c,$(ANA_SRC))
tests/bin/fuzz-reader: tests/fuzz/reader_target.c $(FUZZ_SRC) $(ANA_HDR) | .deps-stamp
	@mkdir -p tests/bin
	$(FUZZ_CC) $(WARN) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    -fno-omit-frame-pointer $(CPPFLAGS) -Ianalyze -o $@ $< $(FUZZ_SRC) $(ANA_LIBS)

fuzz: tests/bin/fuzz-reader
	@mkdir -p tests/out/fuzz-corpus
	tests/bin/fuzz-reader -max_total_time=$(FUZZ_SECONDS) -close_fd_mask=3 -rss_limit_mb=2048 \
	    -timeout=20 -max_len=1200000 -artifact_prefix=tests/out/fuzz- \
	    tests/out/fuzz-corpus tests/fuzz-corpus

bench: all $(TEST_BIN)
	bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/lib/race $(DESTDIR)$(PREFIX)/bin
	install -m 0755 shim/librace.so $(DESTDIR)$(PREFIX)/lib/race/librace.so
	install -m 0755 analyze/race $(DESTDIR)$(PREFIX)/bin/race

clean:
	rm -rf shim/librace.so analyze/race analyze/race-asan tests/bin tests/out bench/out

.PHONY: all test smoke run bench install clean fuzz
