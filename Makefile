# KeyGuard's front door. `make demo` and `make test` work on a fresh machine: they install what they need
# (Python tools into a project-local .venv from pinned requirements) and start/stop the local AWS themselves.

PYTHON ?= python3
VENV ?= .venv
CARGO ?= cargo
export KEYGUARD_VENV := $(abspath $(VENV))
export KEYGUARD_BIN := $(abspath $(or $(CARGO_TARGET_DIR),target))/debug/keyguard
# Tests and lint build the dev profile without debug info (half the target/ size, faster links).
export CARGO_PROFILE_DEV_DEBUG := 0
# A clean build in CI gains nothing from incremental compilation, which doubles target/ (measured: 5 GB of 18 GB).
export CARGO_INCREMENTAL ?= 0
export CARGO_TERM_COLOR ?= never

.PHONY: help venv lint test test-rust demo bench fuzz clean

help:
	@echo "make demo    the guard end to end on a local AWS (moto server on 127.0.0.1)"
	@echo "make test    lint, every test, the template checks"
	@echo "make build   the arm64 Lambda package (cargo-lambda, zig)"
	@echo "make deploy  sam deploy (guided the first time)"
	@echo "make bench   benchmarks"
	@echo "make fuzz    coverage-guided fuzzing of the event parser and the archive reader (FUZZ_SECONDS each)"

## venv: the project's Python tools, pinned (tools/requirements*.txt, tools/constraints*.txt)
venv: $(VENV)/.installed $(VENV)/sam/.installed

$(VENV)/.installed: tools/requirements.txt tools/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt -c tools/constraints.txt
	touch $@

# The SAM CLI pins a boto3 that conflicts with checkov's: it gets a venv of its own.
$(VENV)/sam/.installed: tools/requirements-sam.txt tools/constraints-sam.txt | $(VENV)/.installed
	$(PYTHON) -m venv $(VENV)/sam
	$(VENV)/sam/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-sam.txt -c tools/constraints-sam.txt
	touch $@

## lint: nothing outside the repository is referred to; formatting and clippy, warnings as errors
lint:
	$(PYTHON) tools/check_self_contained.py
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## test: everything CI runs
test: venv lint test-rust lint-template scan-template test-template

test-rust: venv
	$(CARGO) test --workspace

## demo: moto server, a small account, the Lambda in notify then deactivate mode
demo: venv
	$(CARGO) run -q -p keyguard-tests --example demo

## bench: sizes, cold start, per-event latency and calls, peak memory, audit of 1,000 and 10,000 users on moto,
## replay throughput on a generated 1 GB archive; every figure beside a baseline from the same run. The harnesses
## build with the bench-harness profile and without the tests' `full` feature; the binaries they time build with
## the release profile, in one build (keyguard_tests::release_binaries).
bench: venv
	$(CARGO) run --profile bench-harness -q -p keyguard-tests --no-default-features --example bench_audit
	$(CARGO) run --profile bench-harness -q -p keyguard-tests --no-default-features --example bench_replay

## fuzz: cargo-fuzz (libFuzzer, AddressSanitizer) on each target for FUZZ_SECONDS, seeded from tests/fixtures;
## fails on a crash (the input is kept in fuzz/artifacts/<target>/). cargo-fuzz is installed, pinned, into .tools/.
## It needs nightly rustc flags (-Zsanitizer): RUSTC_BOOTSTRAP=1 allows them on the stable toolchain.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := parse_event archive_reader
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_TOOLS := $(abspath .tools)
fuzz:
	@test -x $(FUZZ_TOOLS)/bin/cargo-fuzz || $(CARGO) install --locked cargo-fuzz@$(CARGO_FUZZ_VERSION) --root $(FUZZ_TOOLS)
	$(PYTHON) tools/fuzz_seeds.py fuzz/corpus
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
		RUSTC_BOOTSTRAP=1 $(FUZZ_TOOLS)/bin/cargo-fuzz fuzz run --fuzz-dir fuzz $$t fuzz/corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=1 || exit 1; \
	done

clean:
	$(CARGO) clean
	rm -rf $(VENV) .aws-sam

include mk/template.mk
include mk/report.mk
