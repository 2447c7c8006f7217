# lua-opentact: build, test and demo. `make test` and `make demo` install
# what they need first (make deps: only the missing Debian packages).

LUA ?= lua5.4
VERSION := $(shell sed -n 's/^\#define OPENTACT_VERSION "\(.*\)"/\1/p' src/opentact.h)
ROCKSPEC := opentact-$(VERSION)-1.rockspec
LUAS := lua5.4 lua5.3 lua5.2 lua5.1 luajit

# Debian packages the build, the tests and the demo need.
DEBS := gcc libc6-dev make ca-certificates curl openssl \
	lua5.1 lua5.2 lua5.3 lua5.4 liblua5.1-0-dev liblua5.2-dev liblua5.3-dev liblua5.4-dev \
	luajit2 libluajit2-5.1-dev lua-cjson lua-busted lua-socket lua-check luarocks lua-cqueues lua-luv lua-ldoc \
	zsh groff-base bsdutils \
	nginx libnginx-mod-http-lua libcurl4-openssl-dev cppcheck valgrind clang libclang-rt-14-dev \
	kamailio kamailio-lua-modules sipsak

# Per-interpreter settings: the Lua ABI, its headers, its rocks tree.
abi = $(if $(filter luajit,$(1)),5.1,$(patsubst lua%,%,$(1)))
incdir = $(if $(filter luajit,$(1)),/usr/include/luajit-2.1,/usr/include/lua$(call abi,$(1)))
tree = $(CURDIR)/.rocks/$(1)

SOURCES := $(wildcard src/*.c)
HEADERS := $(wildcard src/*.h)
# The layers of the C core (see README, "Layout"): the decoder and the
# request builders (and the hash) do no I/O and link without libcurl; only the transport
# sees curl.h; core.c registers them all.
DECODER_SOURCES := src/answer.c src/answer_skim.c src/json.c src/error.c src/buffer.c
REQUEST_SOURCES := src/request.c src/search.c src/sha256.c
CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter

.PHONY: all deps build install install-all test test-one check sanitize memcheck fuzz bench demo emulator docs man clean \
	test-luas test-sanitize test-memcheck test-fuzz test-check install-each

all: build

deps:
	@missing=$$(for p in $(DEBS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# A development build of opentact/core.so for $(LUA), in build/$(LUA)/.
build: build/$(LUA)/opentact/core.so

build/%/opentact/core.so: $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(WARN) -fPIC -fvisibility=hidden -I$(call incdir,$*) -shared -o $@ $(SOURCES) -lcurl

# Installs the rock into .rocks/$(LUA) through luarocks, as users get it.
install: install-$(LUA)

install-all: $(addprefix install-,$(LUAS))

install-%: man/man1/opentact.1
	@luarocks --lua-version $(call abi,$*) --tree $(call tree,$*) make --deps-mode=none $(ROCKSPEC) \
		$(if $(filter luajit,$*),LUA_INCDIR=$(call incdir,$*)) > .rocks-$*.log 2>&1 \
		|| { cat .rocks-$*.log; exit 1; }
	@echo "installed the rock for $* in $(call tree,$*)"
	@echo "  commands (opentact, opentact-emulator), from any folder: export PATH=\"$(call tree,$*)/bin:\$$PATH\""
	@echo "  the module for your own $* scripts: eval \"\$$(luarocks --lua-version $(call abi,$*) --tree $(call tree,$*) path --no-bin)\""

# The whole suite on every Lua; the specs tagged #c (those that run the C
# core in the busted process: .busted's task `c`) on 5.4 under ASan+UBSan
# and under Valgrind; `make check`; and a short fuzzing run of each harness
# on 5.4, 5.1 and LuaJIT. They run at once (the spec runs mostly wait on
# sockets and child processes, Valgrind and the fuzzers on the CPU), each
# one's output shown whole when it ends; then a line per suite with its
# time, and one line summing every run.
# make check and the ASan build go alongside the installs, which take
# one core (they build in src/, one at a time).
SUMMARY := $(CURDIR)/build/test-summary
TEST_STAGES := test-memcheck test-fuzz test-sanitize test-luas
test: deps
	@mkdir -p build && rm -f $(SUMMARY)
	@$(MAKE) --no-print-directory -j2 --output-sync=target SUMMARY_FILE=$(SUMMARY) \
		install-each test-check build/asan/opentact/core.so
	@$(MAKE) --no-print-directory -j$(words $(TEST_STAGES)) --output-sync=target \
		SUMMARY_FILE=$(SUMMARY) FUZZ_SECONDS=5 $(TEST_STAGES)
	@awk '{ p += $$1; f += $$2; n = $$0; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", n); \
		printf "%-50s %4d passed, %d failed, %4d s\n", n ":", $$1, $$2, $$3 } \
		END { print "all suites (5.4, 5.3, 5.2, 5.1, LuaJIT; #c specs under ASan+UBSan and Valgrind):"; \
		print p " passed, " f " failed" }' $(SUMMARY)

# The stages of `make test`, without installing: each adds a line to
# $(SUMMARY_FILE) when given one ("passed failed seconds name").
stage = start=$$(date +%s); $(2); status=$$?; \
	[ -z "$(SUMMARY_FILE)" ] || echo "0 0 $$(( $$(date +%s) - start )) $(1)" >> "$(SUMMARY_FILE)"; exit $$status
# The files with #c specs: busted runs a describe's setup even when the tag
# leaves none of its tests to run.
C_SPECS = $(shell grep -l '\#c"' spec/*_spec.lua)
test-luas:
	SUMMARY_NAME="spec/run (every Lua)" spec/run
test-sanitize: build/asan/opentact/core.so
	san=$$($(CC) -print-file-name=libasan.so):$$($(CC) -print-file-name=libubsan.so); \
	RUN=c SPECS="$(C_SPECS)" LUAS=lua5.4 SUMMARY_NAME="#c specs, 5.4 under ASan+UBSan" CORE=$(CURDIR)/build/asan \
		ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		WRAP="env LD_PRELOAD=$$san OPENTACT_SPEC_PRELOAD=$$san" spec/run
test-memcheck:
	RUN=c SPECS="$(C_SPECS)" LUAS=lua5.4 SHARDS=2 SUMMARY_NAME="#c specs, 5.4 under Valgrind" WRAP="$(VALGRIND)" spec/run
	@$(call stage,Valgrind leak run (spec/support/leakcheck.lua),LUA_PATH='$(call tree,lua5.4)/share/lua/5.4/?.lua;$(CURDIR)/spec/support/?.lua;;' \
		LUA_CPATH='$(call tree,lua5.4)/lib/lua/5.4/?.so;$(CURDIR)/build/lua5.4/spec/?.so;;' $(VALGRIND) lua5.4 spec/support/leakcheck.lua)
test-fuzz:
	@$(call stage,fuzz ($(FUZZ_SECONDS) s per harness and Lua),$(MAKE) --no-print-directory fuzz)
test-check:
	@$(call stage,make check,$(MAKE) --no-print-directory check)
install-each:
	@for l in $(LUAS); do $(MAKE) --no-print-directory install-$$l || exit 1; done

# The #c specs on 5.4 with opentact.core built with ASan and UBSan.
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
sanitize: install-lua5.4
	@$(MAKE) --no-print-directory test-sanitize

build/asan/opentact/core.so: $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(WARN) $(SAN) -fPIC -I/usr/include/lua5.4 -shared -o $@ $(SOURCES) -lcurl

# The #c specs on 5.4 under Valgrind memcheck, then a run that closes its
# state so that any leak shows as definitely lost. Valgrind finds the same
# errors without --track-origins=yes, in half the CPU time: to see where an
# uninitialised value came from, `make memcheck VALGRIND_OPTS=--track-origins=yes`.
VALGRIND_OPTS ?=
VALGRIND := valgrind -q --keep-debuginfo=yes --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	--show-leak-kinds=definite $(VALGRIND_OPTS)
memcheck: install-lua5.4
	@$(MAKE) --no-print-directory test-memcheck

# libFuzzer harnesses for request building and answer decoding, each built
# against every Lua of FUZZ_LUAS (their stacks and numbers differ) and run
# for FUZZ_SECONDS on a working copy of the seed corpus.
FUZZ_SECONDS ?= 60
FUZZERS := fuzz_request fuzz_answer
FUZZ_LUAS := lua5.4 lua5.1 luajit
fuzzlib = $(if $(filter luajit,$(1)),-lluajit-5.1,-l$(1))
fuzz: $(foreach l,$(FUZZ_LUAS),$(addprefix build/fuzz/$(l)/,$(FUZZERS)))
	@for l in $(FUZZ_LUAS); do for f in $(FUZZERS); do \
		corpus=build/fuzz/corpus-$${f#fuzz_}; mkdir -p $$corpus; \
		cp -n fuzz/corpus/$${f#fuzz_}/* $$corpus/ 2>/dev/null; \
		echo "== $$f on $$l for $(FUZZ_SECONDS) s"; \
		build/fuzz/$$l/$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -rss_limit_mb=1024 \
			-artifact_prefix=build/fuzz/crash-$$l-$${f#fuzz_}- $$corpus > build/fuzz/$$l-$$f.log 2>&1 \
			|| { tail -n 40 build/fuzz/$$l-$$f.log; exit 1; }; \
		grep -E '^Done [0-9]+ runs' build/fuzz/$$l-$$f.log; \
	done; done

# Each harness links only what it tests: the decoder, and for requests the
# request builders; never the transport, never libcurl.
fuzz_sources_fuzz_answer := $(DECODER_SOURCES)
fuzz_sources_fuzz_request := $(DECODER_SOURCES) $(REQUEST_SOURCES)
define fuzz_rule
build/fuzz/$(1)/%: fuzz/%.c fuzz/harness.h $(SOURCES) $(HEADERS)
	@mkdir -p $$(dir $$@)
	clang -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-I$(call incdir,$(1)) -Isrc -o $$@ $$< $$(fuzz_sources_$$*) $(call fuzzlib,$(1))
endef
$(foreach l,$(FUZZ_LUAS),$(eval $(call fuzz_rule,$(l))))

# Benchmarks against peers; writes bench/RESULTS.md. python3-requests is
# one of the peers.
BENCH_DEBS := python3-requests jq
bench: deps install-lua5.4 install-luajit
	@$(MAKE) --no-print-directory deps DEBS="$(BENCH_DEBS)"
	bench/run

# The whole suite on $(LUA) only, without installing packages.
test-one: install-$(LUA)
	LUAS=$(LUA) FULL=$(LUA) spec/run

check:
	luacheck --no-color -q lua bin/opentact emulator spec examples tools types
	@for l in $(LUAS); do \
		$(CC) $(CFLAGS) $(WARN) -Werror -fPIC -fvisibility=hidden -I$$( [ $$l = luajit ] && echo /usr/include/luajit-2.1 || echo /usr/include/$$l ) \
			-shared -o /dev/null $(SOURCES) -lcurl || exit 1; \
	done
	@echo "compiled without warnings for: $(LUAS)"
	@mkdir -p build/check
	@$(CC) $(CFLAGS) -fPIC -I/usr/include/lua5.4 -r -nostdlib -o build/check/nocurl.o $(DECODER_SOURCES) $(REQUEST_SOURCES)
	@if nm -u build/check/nocurl.o | grep -E ' (curl_|transport_)'; then \
		echo "the decoder or the request builders reach the transport or libcurl"; exit 1; fi
	@if grep -l -E '<curl/|"transport_curl.h"' $(filter-out src/transport_curl.%,$(SOURCES) $(HEADERS)); then \
		echo "only the curl transport may see curl.h or transport_curl.h"; exit 1; fi
	@echo "the decoder and the request builders link without the transport or libcurl"
	@if grep -n -E '[A-Za-z0-9_)]\._[A-Za-z]|:_[A-Za-z]' lua/opentact/cli/*.lua bin/opentact | grep -v '\._VERSION\b'; then \
		echo "the command line uses the public API only: no fields or methods starting with _"; exit 1; fi
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
		--inline-suppr -I/usr/include/lua5.4 --suppress=missingIncludeSystem --suppress=toomanyconfigs src

demo: deps install
	@examples/demo.sh $(LUA) '$(call tree,$(LUA))'

emulator:
	bin/opentact-emulator

# The man page, made from the help `opentact --help` prints (the rock
# installs it, with the completion scripts).
man: man/man1/opentact.1

man/man1/opentact.1: $(wildcard lua/opentact/cli/*.lua) tools/manpage.lua src/opentact.h
	@mkdir -p $(dir $@)
	$(LUA) tools/manpage.lua $@

# The API reference, built by LDoc (config.ld) from the LuaLS definitions
# in types/, which spec/50-types_spec.lua keeps true to the code. Any LDoc
# warning fails it.
docs:
	@command -v ldoc > /dev/null || { echo "ldoc is not installed: make deps"; exit 1; }
	@ldoc --fatalwarnings --quiet -c config.ld .
	@echo "API reference: build/docs/index.html"

clean:
	rm -rf build .rocks .rocks-*.log
