# The broker: `make` builds broker/broker and topicd/topicd; `make check`
# installs what is missing, then runs every test (also under ASan/UBSan);
# `make run` starts the broker in the foreground with built-in defaults.
SHELL := /bin/bash
MAKEFLAGS += --no-print-directory
PREFIX ?= /usr/local
export PREFIX

BUILD := $(MAKE) -f mk/build.mk
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

.PHONY: all deps run check unit unit-san e2e san clean fuzz bench
all:
	@$(BUILD) OBJ=build/release BROKER_BIN=broker/broker TOPICD_BIN=topicd/topicd

san:
	@$(BUILD) OBJ=build/san BROKER_BIN=build/san/bin/broker TOPICD_BIN=build/san/bin/topicd \
		CFLAGS="-O1 -g" XCFLAGS="$(SAN_FLAGS)" XLDFLAGS="$(SAN_FLAGS)"

# Installs the build and test dependencies that are missing (Debian).
deps:
	@scripts/deps.sh

run: deps all
	@mkdir -p data
	./broker/broker -D data

unit: all
	@tests/run-unit build/release

unit-san: san
	@tests/run-unit build/san

e2e: all san
	@tests/run-e2e

check: deps
	@$(MAKE) all san
	@$(MAKE) unit unit-san
	@$(MAKE) e2e

# The JSON-lines publisher benchmark: builds the load generator, then
# starts its own release brokers on free ports (tests/bench/run-json-bench).
bench: all
	@mkdir -p build/bench
	@echo "  CC      build/bench/json_load"
	@$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o build/bench/json_load \
		tests/bench/json_load.c $$(pkg-config --cflags --libs libevent_core)
	@tests/bench/run-json-bench

clean:
	rm -rf build broker/broker topicd/topicd
