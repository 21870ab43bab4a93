# mod_wsgi_rs: build, test, run and install.
#
#   make deps       install the Debian packages the build and tests need
#   make build      cargo build --release (the default target)
#   make test       deps + build + cargo test
#   make run        deps + build + a private Apache on 127.0.0.1:$(PORT) serving $(APP)
#                   (mod_wsgi_rs-express start-server run from the checkout; EXPRESS_ARGS adds options)
#   make bench      deps + build + side-by-side benchmarks (writes BENCHMARKS.md)
#   make soak       deps + build + long fault, leak and restart runs (writes SOAK.md)
#   make precompile compile the stdlib, a venv and an application into the bytecode cache
#   make install    copy mod_wsgi_rs.so and the a2enmod files (honours DESTDIR)
#   make uninstall  remove exactly what install copied (honours DESTDIR)
#   make fuzz       run every fuzz target in fuzz/ for $(FUZZ_SECONDS) s each (libFuzzer, stable toolchain)
#   make fuzz-cmin  minimise the fuzz corpora in fuzz/corpus/
#   make clean      cargo clean

SHELL := /bin/bash

# Rust from rustup lives in ~/.cargo/bin, which non-login shells may not have on PATH.
CARGO ?= $(shell command -v cargo 2>/dev/null || echo $(HOME)/.cargo/bin/cargo)
APXS  ?= apxs

# The shared object cargo builds, and the name it is installed under.
SO          ?= target/release/libmod_wsgi_rs.so
MODULE_FILE  = mod_wsgi_rs.so
MODULE_NAME  = wsgi_rs

# Install locations come from apxs (Debian: /usr/lib/apache2/modules and /etc/apache2).
# Both may be overridden; DESTDIR is prepended to both.
LIBEXECDIR    ?= $(shell $(APXS) -q LIBEXECDIR 2>/dev/null)
SYSCONFDIR    ?= $(shell $(APXS) -q SYSCONFDIR 2>/dev/null)
MODS_AVAILABLE = $(SYSCONFDIR)/mods-available
DESTDIR       ?=

# make run (see tools/run.sh)
PORT     ?= 8000
APP      ?= examples/hello.wsgi
MPM      ?= event
LOGLEVEL ?= warn wsgi_rs:info

# Debian packages: the build (apache2-dev for apxs and headers, libclang-dev for
# bindgen, python3.11-dev for libpython, a C toolchain for the shim), the tests
# (apache2, mod_python and mod_wsgi beside us, curl, chromium to load the status page) and
# the benchmarks (wrk; apxs again for their C handler; bench.py itself pip-installs granian
# and gunicorn into a venv).
DEB_PACKAGES = apache2 apache2-dev libclang-dev build-essential pkg-config \
               python3.11 python3.11-dev python3.11-venv \
               libapache2-mod-python libapache2-mod-wsgi-py3 \
               wrk curl openssl ca-certificates chromium

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT   = $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -y -o DPkg::Lock::Timeout=600

.PHONY: all deps build test run bench soak precompile install uninstall clean fuzz fuzz-cmin fuzz-build

# deps must finish before anything is built, also under make -j.
.NOTPARALLEL:

all: build

deps:
	@missing=; \
	for p in $(DEB_PACKAGES); do \
	    status=$$(dpkg-query -W -f='$${db:Status-Abbrev}' "$$p" 2>/dev/null || true); \
	    [[ $$status == ii* ]] || missing="$$missing $$p"; \
	done; \
	if [[ -z $$missing ]]; then \
	    echo "deps: all required Debian packages are installed"; \
	else \
	    echo "deps: installing:$$missing"; \
	    $(APT) update </dev/null && \
	    $(APT) install $$missing </dev/null; \
	fi

build:
	$(CARGO) build --release

# Only used when $(SO) does not exist yet (e.g. `make install` on a fresh clone).
$(SO):
	$(CARGO) build --release

test: deps build
	$(CARGO) test --release --no-fail-fast -- --test-threads=2

run: deps build
	PORT='$(PORT)' APP='$(APP)' SO='$(SO)' MPM='$(MPM)' LOGLEVEL='$(LOGLEVEL)' EXPRESS_ARGS='$(EXPRESS_ARGS)' tools/run.sh

# Side-by-side benchmarks (about 70 minutes: 5 reps of 10 s per server, case and
# connection count); writes BENCHMARKS.md.
# BENCH_ARGS=--quick for a short smoke run.
bench: deps build
	python3 bench/bench.py $(BENCH_ARGS)

# Soak runs (about 10-15 minutes): 1,000 disconnects, 60 s of mixed load, a million
# requests on one child, 20 graceful and 20 full restarts, and in daemon mode a million
# requests through one daemon and 20 each of graceful restarts, script touches and
# maximum-requests recycles under load; writes SOAK.md and fails on any failed check.
# SOAK_ARGS=--quick for a scaled-down smoke run, SOAK_ARGS="--only daemon" for daemon mode.
soak: deps build
	python3 bench/soak.py $(SOAK_ARGS)

# Ahead-of-time compilation into the bytecode cache, as root (see tools/precompile.sh
# and README, "WSGIPythonOptimize in practice"), e.g. from a deploy script:
#   make precompile LEVELS=2 VENV=/srv/venv APP_DIRS=/srv/site \
#        PYCACHE_PREFIX=/var/cache/apache2/wsgi_rs CACHE_USERS="www-data shop"
LEVELS         ?= 1 2
PYCACHE_PREFIX ?= /var/run/apache2/wsgi_rs-pycache
CACHE_USERS    ?= www-data
VENV           ?=
APP_DIRS       ?=
STDLIB         ?= yes

precompile:
	LEVELS='$(LEVELS)' PYCACHE_PREFIX='$(PYCACHE_PREFIX)' CACHE_USERS='$(CACHE_USERS)' \
	VENV='$(VENV)' APP_DIRS='$(APP_DIRS)' STDLIB='$(STDLIB)' tools/precompile.sh

install: $(SO)
	@test -n '$(LIBEXECDIR)' -a -n '$(SYSCONFDIR)' || \
	    { echo "install: apxs not found; run 'make deps' or set LIBEXECDIR and SYSCONFDIR" >&2; exit 1; }
	install -d '$(DESTDIR)$(LIBEXECDIR)' '$(DESTDIR)$(MODS_AVAILABLE)'
	install -m 644 '$(SO)' '$(DESTDIR)$(LIBEXECDIR)/$(MODULE_FILE)'
	install -m 644 apxs/$(MODULE_NAME).load apxs/$(MODULE_NAME).conf '$(DESTDIR)$(MODS_AVAILABLE)/'
	@echo
	@echo "Installed $(DESTDIR)$(LIBEXECDIR)/$(MODULE_FILE)"
	@echo "Enable it with 'a2enmod $(MODULE_NAME)' (it conflicts with mod_wsgi: 'a2dismod wsgi' first"
	@echo "if that is enabled), then restart Apache."

uninstall:
	@test -n '$(LIBEXECDIR)' -a -n '$(SYSCONFDIR)' || \
	    { echo "uninstall: apxs not found; set LIBEXECDIR and SYSCONFDIR" >&2; exit 1; }
	rm -f '$(DESTDIR)$(LIBEXECDIR)/$(MODULE_FILE)' \
	      '$(DESTDIR)$(MODS_AVAILABLE)/$(MODULE_NAME).load' \
	      '$(DESTDIR)$(MODS_AVAILABLE)/$(MODULE_NAME).conf'

clean:
	$(CARGO) clean

# Fuzzing (see fuzz/Cargo.toml): each target runs for FUZZ_SECONDS at the
# lowest CPU priority; any assertion failure or crash stops with an error
# and leaves the input under fuzz/artifacts/<target>/. New inputs are added
# to fuzz/corpus/<target>/; `make fuzz-cmin` shrinks them back.
#
# The targets are built by the stable toolchain with the coverage
# instrumentation libFuzzer reads (what cargo-fuzz passes, less the address
# sanitizer, which needs nightly): the parsers fuzzed are safe Rust, where a
# panic or a failed assertion is what there is to find. FUZZ_RUSTFLAGS reach
# only the targets' code (--target), not build scripts, which are linked
# without libFuzzer.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= python_optimize hash_seed flags_and_names python_paths warning_filter \
                script_alias status headers wire wire_reader
FUZZ_FLAGS   ?= -timeout=25 -print_final_stats=1
FUZZ_NICE    ?= nice -n 19
FUZZ_TRIPLE  ?= $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
FUZZ_BIN      = fuzz/target/$(FUZZ_TRIPLE)/release
FUZZ_RUSTFLAGS = -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
                 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
                 -Cllvm-args=-sanitizer-coverage-pc-table \
                 -Cllvm-args=-sanitizer-coverage-trace-compares \
                 --cfg fuzzing -Cdebug-assertions -Coverflow-checks

fuzz-build:
	cd fuzz && RUSTFLAGS='$(FUZZ_RUSTFLAGS)' $(CARGO) build --release --target $(FUZZ_TRIPLE) \
	    $(addprefix --bin ,$(FUZZ_TARGETS))

fuzz: fuzz-build
	for target in $(FUZZ_TARGETS); do \
	    echo "fuzz: $$target for $(FUZZ_SECONDS) s"; \
	    mkdir -p fuzz/artifacts/$$target fuzz/corpus/$$target; \
	    $(FUZZ_NICE) $(FUZZ_BIN)/$$target -artifact_prefix=fuzz/artifacts/$$target/ \
	        -max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS) fuzz/corpus/$$target || exit 1; \
	done

# script_alias reaches thousands of hit-count variants inside the regex
# compiler; for it, keeping one input per covered edge keeps the corpus to
# hundreds of files instead of thousands.
fuzz-cmin: fuzz-build
	for target in $(FUZZ_TARGETS); do \
	    case $$target in script_alias) flags=-use_counters=0;; *) flags=;; esac; \
	    rm -rf fuzz/corpus/$$target.min && mkdir fuzz/corpus/$$target.min && \
	    $(FUZZ_NICE) $(FUZZ_BIN)/$$target -merge=1 $$flags fuzz/corpus/$$target.min fuzz/corpus/$$target && \
	    rm -rf fuzz/corpus/$$target && mv fuzz/corpus/$$target.min fuzz/corpus/$$target || exit 1; \
	done
