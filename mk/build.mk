# Builds one variant of the project.  The top-level Makefile calls this with
#   OBJ         directory for objects and test programs
#   BROKER_BIN  TOPICD_BIN  where the two executables go
#   XCFLAGS     extra compiler flags (sanitizers); XLDFLAGS likewise
#   TOPICD_LINK static (the default) or dynamic (the sanitizer build)
SHELL     := /bin/bash
PKGS      := libevent_core libevent_openssl openssl jansson libbsd libdeflate libsystemd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
# Debian's gdbm ships no pkg-config file; fall back to plain -lgdbm.
GDBM_LIBS  := $(shell pkg-config --libs gdbm 2>/dev/null || echo -lgdbm)
CMOCKA_CFLAGS := $(shell pkg-config --cflags cmocka)
CMOCKA_LIBS   := $(shell pkg-config --libs cmocka)

PREFIX     ?= /usr/local
LIBEXECDIR ?= $(PREFIX)/libexec/broker
VERSION    ?= 0.1.0

CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(XCFLAGS) -Icommon $(PKG_CFLAGS) \
              -DBROKER_LIBEXECDIR='"$(LIBEXECDIR)"' -DBROKER_VERSION='"$(VERSION)"' -MMD -MP
LIBS     := $(PKG_LIBS) $(GDBM_LIBS) -lresolv

# topicd is linked statically: the master starts one for each topic that
# wakes up, and a static topicd skips the dynamic loader (six libraries
# to map, relocate and protect), which was half the time of a start and
# exit.  The archives come with the same -dev packages as the libraries.
# glibc warns, in a static link, of the name-service functions libevent's
# evutil.o refers to; topicd never calls them, and those warnings, only
# the ones that follow an "in function" line of evutil.o, are left out of
# the output (the same warning for any other object is kept).
TOPICD_LINK ?= static
ifeq ($(TOPICD_LINK),static)
TOPICD_LIBS := -static $(shell pkg-config --static --libs libevent_core libbsd libdeflate) $(GDBM_LIBS) -pthread
TOPICD_LD_FILTER := 2>&1 | awk '/libevent_core\.a\(evutil\.o\): in function/ { ev = 1; next } \
	ev && /in statically linked applications requires at runtime/ { next } \
	{ ev = 0; print }' >&2; exit $${PIPESTATUS[0]}
else
TOPICD_LIBS := $(LIBS)
TOPICD_LD_FILTER :=
endif

COMMON_SRC := $(wildcard common/*.c)
# The codecs are pure (no I/O): one library that the master, the unit
# tests, the fuzzers and the load generators link (CODEC_SRC, mk/codec.mk).
include mk/codec.mk
BROKER_SRC := $(filter-out $(CODEC_SRC),$(wildcard broker/*.c broker/*/*.c))
TOPICD_SRC := $(wildcard topicd/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)

COMMON_OBJ := $(COMMON_SRC:%.c=$(OBJ)/%.o)
CODEC_OBJ  := $(CODEC_SRC:%.c=$(OBJ)/%.o)
BROKER_OBJ := $(BROKER_SRC:%.c=$(OBJ)/%.o)
TOPICD_OBJ := $(TOPICD_SRC:%.c=$(OBJ)/%.o)
# Unit tests link the broker's and topicd's modules except their main().
BROKER_LIB_OBJ := $(filter-out $(OBJ)/broker/main.o,$(BROKER_OBJ))
TOPICD_LIB_OBJ := $(filter-out $(OBJ)/topicd/main.o,$(TOPICD_OBJ))
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(OBJ)/tests/%)

.PHONY: all bins unit
all: bins unit
bins: $(BROKER_BIN) $(TOPICD_BIN)
unit: $(UNIT_BIN)

$(OBJ)/libcommon.a: $(COMMON_OBJ)
	@mkdir -p $(@D)
	@rm -f $@ && $(AR) rcs $@ $^

$(OBJ)/libcodec.a: $(CODEC_OBJ)
	@mkdir -p $(@D)
	@rm -f $@ && $(AR) rcs $@ $^

$(BROKER_BIN): $(BROKER_OBJ) $(OBJ)/libcodec.a $(OBJ)/libcommon.a
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) $(XLDFLAGS) -o $@ $^ $(LIBS)

# The link mode is something topicd depends on: changing it relinks.
TOPICD_STAMP := $(OBJ)/topicd-link-$(TOPICD_LINK)
$(TOPICD_STAMP):
	@mkdir -p $(@D)
	@rm -f $(OBJ)/topicd-link-* && touch $@

$(TOPICD_BIN): $(TOPICD_OBJ) $(OBJ)/libcommon.a $(TOPICD_STAMP)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) $(XLDFLAGS) -o $@ $(TOPICD_OBJ) $(OBJ)/libcommon.a $(TOPICD_LIBS) \
		$(TOPICD_LD_FILTER)

$(OBJ)/libbroker.a: $(BROKER_LIB_OBJ)
	@mkdir -p $(@D)
	@rm -f $@ && $(AR) rcs $@ $^

$(OBJ)/libtopicd.a: $(TOPICD_LIB_OBJ)
	@mkdir -p $(@D)
	@rm -f $@ && $(AR) rcs $@ $^

# Archives, so that a test pulls in only the modules it uses.
$(OBJ)/tests/%: $(OBJ)/tests/unit/%.o $(OBJ)/libbroker.a $(OBJ)/libtopicd.a $(OBJ)/libcodec.a $(OBJ)/libcommon.a
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(ALL_CFLAGS) $(XLDFLAGS) -o $@ $< $(OBJ)/libbroker.a $(OBJ)/libtopicd.a $(OBJ)/libcodec.a $(OBJ)/libcommon.a $(LIBS) $(CMOCKA_LIBS)

$(OBJ)/tests/unit/%.o: tests/unit/%.c
	@mkdir -p $(@D)
	@echo "  CC      $@"
	@$(CC) $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -Ibroker -Itopicd -c -o $@ $<

# The master's folders name each other's headers: "core/core.h".
$(OBJ)/broker/%.o: broker/%.c
	@mkdir -p $(@D)
	@echo "  CC      $@"
	@$(CC) $(ALL_CFLAGS) -Ibroker -c -o $@ $<

$(OBJ)/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC      $@"
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

# A unit test's object is made by a chain of pattern rules, so make would
# delete it as intermediate; its dependency file then names it, and the
# next make would build every test again.  Kept.
.SECONDARY: $(UNIT_SRC:tests/unit/%.c=$(OBJ)/tests/unit/%.o)

-include $(COMMON_OBJ:.o=.d) $(CODEC_OBJ:.o=.d) $(BROKER_OBJ:.o=.d) $(TOPICD_OBJ:.o=.d) $(UNIT_SRC:tests/unit/%.c=$(OBJ)/tests/unit/%.d)
