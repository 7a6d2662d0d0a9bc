# The broker: `make` builds broker/broker and topicd/topicd; `make check`
# installs what is missing, then runs every test (also under ASan/UBSan);
# `make run` starts the broker in the foreground with built-in defaults.
SHELL := /bin/bash
MAKEFLAGS += --no-print-directory
PREFIX ?= /usr/local
export PREFIX

BUILD := $(MAKE) -f mk/build.mk
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# The test build also has hooks the fault tests use (a topicd that aborts on
# a marked payload, as on a poison record).
TEST_HOOKS := -DBROKER_TEST_HOOKS
include mk/codec.mk

.PHONY: all deps run check unit unit-san e2e load san clean fuzz fuzz-regress bench install uninstall manlint
all:
	+@$(BUILD) OBJ=build/release BROKER_BIN=broker/broker TOPICD_BIN=topicd/topicd

san:
	+@$(BUILD) OBJ=build/san BROKER_BIN=build/san/bin/broker TOPICD_BIN=build/san/bin/topicd \
		TOPICD_LINK=dynamic CFLAGS="-O1 -g" XCFLAGS="$(SAN_FLAGS) $(TEST_HOOKS)" XLDFLAGS="$(SAN_FLAGS)"

# Installs the build and test dependencies that are missing (Debian).
deps:
	@scripts/deps.sh

# Running needs only what building does.  As root, the broker would become
# the `broker` user, which a development machine may not have: there it
# keeps running as the invoking user.  ARGS go to the broker (make run
# ARGS='-p 1884' when another server holds port 1883).
run:
	@scripts/deps.sh build
	+@$(MAKE) -s --no-print-directory all
	@mkdir -p data build
	@if [ "$$(id -u)" -eq 0 ]; then printf 'user root\n' > build/run.conf; \
	else : > build/run.conf; fi
	./broker/broker -c build/run.conf -D data $(ARGS)

unit: all
	@tests/run-unit build/release

unit-san: san
	@tests/run-unit build/san

e2e: all san
	@tests/run-e2e

# Fuzz targets (libFuzzer).  `make fuzz-regress` replays every kept input
# (the corpus and the crash reproducers) once, as part of make check, then
# fuzzes each target for a few thousand runs from an empty corpus with a
# fixed seed: only the fuzzing loop prints NEW_FUNC lines, which starts the
# sanitizers' symbolizer and leaves its pipes open between inputs, so the
# harnesses' per-input oracles are checked as a campaign runs them;
# `make fuzz FUZZ_SECONDS=60` fuzzes each target for a while.
FUZZ_TARGETS := conf ipc json mqtt route passwd psk acl settings will ws
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -Icommon -Ibroker
FUZZ_LIBS    := $$(pkg-config --libs libevent_core jansson libbsd libdeflate libcrypto) -lgdbm -lresolv
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_RUNS := 3000
FUZZ_EXTRA_conf :=
FUZZ_EXTRA_ipc  :=
FUZZ_EXTRA_json := broker/json/codec.c broker/json/bignum.c broker/json/login_line.c
FUZZ_EXTRA_mqtt := $(MQTT_CODEC_SRC)
FUZZ_EXTRA_route := broker/core/topictree.c broker/core/subtree.c
FUZZ_EXTRA_passwd := broker/auth/passwd.c broker/auth/lines.c
FUZZ_EXTRA_psk  := broker/auth/psk.c broker/auth/lines.c
FUZZ_EXTRA_acl  := broker/auth/acl.c broker/auth/lines.c
FUZZ_EXTRA_will := broker/mqtt/will_rec.c
FUZZ_EXTRA_ws   := broker/core/wscodec.c
FUZZ_EXTRA_settings := broker/core/settings.c broker/core/listener_conf.c broker/auth/auth.c \
	broker/auth/passwd.c broker/auth/acl.c broker/auth/psk.c broker/auth/lines.c \
	broker/core/mosquitto_keys.c

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard common/*.c common/*.h broker/mqtt/*.h) $(CODEC_SRC) \
		$(wildcard broker/core/topictree.* broker/core/subtree.* broker/auth/*) \
		$(wildcard broker/core/settings.* broker/core/listener_conf.c)
	@mkdir -p $(@D)
	@echo "  FUZZ    $@"
	@clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_EXTRA_$*) common/*.c $(FUZZ_LIBS)

fuzz-regress: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
		build/fuzz/fuzz_$$t -runs=0 tests/fuzz/corpus/$$t > build/fuzz/$$t.log 2>&1 \
			|| { tail -20 build/fuzz/$$t.log; echo "fuzz-regress: $$t FAILED"; exit 1; }; \
		echo "fuzz-regress: $$t: $$(ls tests/fuzz/corpus/$$t | wc -l) inputs replayed"; \
		rm -rf build/fuzz/smoke-$$t && mkdir build/fuzz/smoke-$$t && \
		build/fuzz/fuzz_$$t -seed=1 -runs=$(FUZZ_SMOKE_RUNS) -artifact_prefix=build/fuzz/ \
			build/fuzz/smoke-$$t > build/fuzz/$$t-smoke.log 2>&1 \
			|| { tail -20 build/fuzz/$$t-smoke.log; echo "fuzz-regress: $$t smoke FAILED"; exit 1; }; \
		echo "fuzz-regress: $$t: $(FUZZ_SMOKE_RUNS) fuzzed runs"; \
	done

fuzz: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
		build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) tests/fuzz/corpus/$$t || exit 1; \
	done

# The builds and the two unit runs go in parallel (JOBS, default: the
# cores), the end-to-end tests in workers of their own (tests/run-e2e);
# the load tests run alone, as what they measure is the machine.
JOBS ?= $(shell nproc)
check: deps
	@$(MAKE) -j$(JOBS) all san $(FUZZ_TARGETS:%=build/fuzz/fuzz_%) build/bench/mqtt_load
	@$(MAKE) manlint
	@$(MAKE) fuzz-regress
	@$(MAKE) -j$(JOBS) -Otarget unit unit-san
	@$(MAKE) e2e
	@$(MAKE) load

# The man pages must lint clean: mandoc -Tlint reports nothing.  It runs
# in man/ so that the pages' references to each other resolve.  When it
# resolves a reference to another package's page without a mandoc.db (on
# Debian, man-db indexes the pages), mandoc also says "outdated mandoc.db
# lacks ...": that is about the system, not the pages, and is left out.
MANPAGES := man/broker.8 man/topicd.8 man/broker.conf.5 man/broker-protocol.7
manlint:
	@echo "  LINT    $(MANPAGES)"
	@cd man && out=$$(mandoc -Tlint $(notdir $(MANPAGES)) 2>&1); rc=$$?; \
	out=$$(printf '%s\n' "$$out" | grep -v '^mandoc: outdated mandoc.db lacks '); \
	if [ $$rc -ne 0 ] || [ -n "$$out" ]; then printf '%s\n' "$$out"; exit 1; fi

# make install [PREFIX=/usr/local] [DESTDIR=]: broker in sbin, topicd in
# libexec/broker (where broker finds it), the man pages, the example
# configuration as /etc/broker/broker.conf (an existing one is kept), the
# systemd unit and the sysusers.d entry for its user.  make uninstall
# removes the same files; the configuration only if it is unchanged.
SYSCONFDIR  ?= /etc
SBINDIR     := $(PREFIX)/sbin
LIBEXECDIR  ?= $(PREFIX)/libexec/broker
MANDIR      := $(PREFIX)/share/man
UNITDIR     ?= $(if $(filter /usr,$(PREFIX)),/lib,$(PREFIX)/lib)/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
CONFDIR     := $(SYSCONFDIR)/broker
INSTALLED_MAN := $(foreach m,$(MANPAGES),$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))

install:
	+@$(BUILD) OBJ=build/release BROKER_BIN=broker/broker TOPICD_BIN=topicd/topicd bins
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(CONFDIR) \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(addprefix $(DESTDIR)$(MANDIR)/man,5 7 8)
	install -m 0755 broker/broker $(DESTDIR)$(SBINDIR)/broker
	install -m 0755 topicd/topicd $(DESTDIR)$(LIBEXECDIR)/topicd
	@set -e; for m in $(MANPAGES); do \
		d=$(DESTDIR)$(MANDIR)/man$${m##*.}; \
		echo "install -m 0644 $$m $$d"; install -m 0644 $$m $$d; \
	done
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		systemd/broker.service > $(DESTDIR)$(UNITDIR)/broker.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/broker.service
	install -m 0644 systemd/broker.sysusers $(DESTDIR)$(SYSUSERSDIR)/broker.conf
	@if [ -e $(DESTDIR)$(CONFDIR)/broker.conf ]; then \
		echo "keeping the existing $(DESTDIR)$(CONFDIR)/broker.conf"; \
	else \
		echo "install -m 0644 etc/broker.conf $(DESTDIR)$(CONFDIR)/broker.conf"; \
		install -m 0644 etc/broker.conf $(DESTDIR)$(CONFDIR)/broker.conf; \
	fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/broker $(DESTDIR)$(LIBEXECDIR)/topicd \
		$(addprefix $(DESTDIR),$(INSTALLED_MAN)) $(DESTDIR)$(UNITDIR)/broker.service \
		$(DESTDIR)$(SYSUSERSDIR)/broker.conf
	@if [ -d $(DESTDIR)$(LIBEXECDIR) ]; then rmdir --ignore-fail-on-non-empty $(DESTDIR)$(LIBEXECDIR); fi
	@f=$(DESTDIR)$(CONFDIR)/broker.conf; \
	if [ -e $$f ] && ! cmp -s etc/broker.conf $$f; then \
		echo "keeping $$f: it was changed since it was installed"; \
	else \
		rm -f $$f; \
		if [ -d $(DESTDIR)$(CONFDIR) ]; then rmdir --ignore-fail-on-non-empty $(DESTDIR)$(CONFDIR); fi; \
	fi

# The benchmarks: installs the brokers compared with (mosquitto and
# nats-server, Debian packages) when missing, builds the load generators,
# then runs the MQTT comparison (tests/bench/run-mqtt-bench; BENCH_ARGS go
# to it, e.g. BENCH_ARGS=--quick or BENCH_ARGS="--only qos1"; a full run
# writes build/bench/results.json) and the JSON-lines publisher benchmark
# (run-json-bench); each starts its own brokers on free ports.  Both run
# even if the first fails.
MQTT_BENCH_COMMON := $(MQTT_CODEC_SRC) \
	common/marshal.c common/topic.c common/xmalloc.c common/log.c common/fdio.c
MQTT_BENCH_CC = $(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Icommon -Ibroker \
	-o $@ $< $(MQTT_BENCH_COMMON) $$(pkg-config --cflags --libs libevent_core)
build/bench/mqtt_load: tests/bench/mqtt_load.c $(MQTT_BENCH_COMMON) \
		$(wildcard broker/mqtt/mqtt_codec.h broker/mqtt/mqtt_props.h broker/mqtt/wire.h common/*.h)
	@mkdir -p build/bench
	@echo "  CC      $@"
	@$(MQTT_BENCH_CC)
build/bench/mqtt_retained: tests/bench/mqtt_retained.c $(MQTT_BENCH_COMMON) \
		$(wildcard broker/mqtt/mqtt_codec.h broker/mqtt/mqtt_props.h broker/mqtt/wire.h common/*.h)
	@mkdir -p build/bench
	@echo "  CC      $@"
	@$(MQTT_BENCH_CC)
build/bench/json_load: tests/bench/json_load.c
	@mkdir -p build/bench
	@echo "  CC      $@"
	@$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o $@ $< \
		$$(pkg-config --cflags --libs libevent_core)

# Sustained load at the default settings, against the release build: every
# message delivered, none dead-lettered, no stall (tests/load/).
load: all build/bench/mqtt_load
	@tests/run-load

bench: all build/bench/mqtt_load build/bench/mqtt_retained build/bench/json_load
	@scripts/deps.sh bench
	@rc=0; tests/bench/run-mqtt-bench $(BENCH_ARGS) || rc=1; \
	tests/bench/run-json-bench || rc=1; exit $$rc

clean:
	rm -rf build broker/broker topicd/topicd
