# sdcl — top-level commands. Everything builds with meson and ninja; where
# the host has no GIMP 3 (`pkg-config gimp-3.0`), each target re-runs itself
# inside the cached Debian 13 root that tools/sdcl-root creates.
#
#   make              build (build/)
#   make test         every test suite but `fullsize`; make test SUITE=engine for one
#                     (SUITE=fullsize: SD 1.5-sized random weights against diffusers)
#   make test-asan    the engine, models and pipeline suites under AddressSanitizer + UBSan (build-asan/)
#   make install      the GIMP 3 plug-in (engine linked in), the shipped model and the
#                     script-fu batch into your GIMP profile ($$GIMP3_DIRECTORY, else
#                     ~/.config/GIMP/3.0; where the host has no GIMP 3, the build root's):
#                     Filters > Generative at GIMP's next start (tools/install-plugin)
#   make demo         real GIMP 3, headless: opens plugin/sample.png, runs generate and
#                     inpaint (an elliptical selection), writes $(BUILD)/demo/demo-*.png
#   make demo-engine  the engine's kernel demo: $(BUILD)/demo.png
#   make screenshot   the plug-in's dialog in GIMP under Xvfb: docs/dialog-inpaint.png
#   make bench        op speed on the SD 1.5 shapes, next to OpenBLAS sgemm; full-size
#                     text encoder, UNet and VAE on random SD 1.5 weights (made once);
#                     txt2img 512x512 and 256x256, BENCH_STEPS Euler steps, CFG 7.5
#                     (bench-pipeline);
#                     then `bench-peer` on the host: the same txt2img in diffusers taking
#                     turns with the engine's, and bench-ops' op shapes in PyTorch
#                     (tests/bench-peer-ops.py); last, both side by side with the ratios the
#                     targets are set on (tools/bench-summary, from the outputs kept in
#                     $(BUILD)/bench-*.txt and bench-pair-peer.json)
#   make bench-engine the engine part of `bench` alone
#   make bench-peer   the side-by-side peer: txt2img on the same random weights in
#                     diffusers on PyTorch CPU (float32, 2 threads; tests/bench-peer.py)
#                     and in the engine (bench-pipeline), the two taking turns stretch by
#                     stretch so both see the same machine (tools/bench-pair), then
#                     PyTorch's own kernels on bench-ops' shapes, row for row
#                     (tests/bench-peer-ops.py).
#                     Always on the host, not in the root: it needs the PyTorch venv
#                     PEER_PYTHON (default ~/.cache/sdcl-venv/bin/python, see
#                     tests/reference/README.md) and is skipped with a note without it;
#                     it reads $(BUILD)/sd15-random.safetensors, which `bench` makes
#   make clean

BUILD      ?= build
ASAN_BUILD ?= build-asan
SUITE      ?=
MESON_OPTS ?=
PEER_PYTHON ?= $(HOME)/.cache/sdcl-venv/bin/python
# txt2img steps per size in bench-engine and bench-peer: seconds per step are
# the mean of the steps after the first; 10 give nine pairs of steps taken in
# turns, which this host's drift (single steps of the same code 0.72-0.98 of
# the peer's in one run) needs for a ratio to 0.01-0.02; 20 for a whole
# image's total
BENCH_STEPS ?= 10

NATIVE := $(shell pkg-config --exists gimp-3.0 2>/dev/null && echo yes)
# how the host runs an engine binary (bench-peer's paced pair)
ENGINE_RUN := $(if $(NATIVE),,tools/sdcl-root --)

.PHONY: all test test-asan install demo demo-engine screenshot bench bench-engine bench-peer clean setup

ifeq ($(NATIVE),yes)

all: setup
	ninja -C $(BUILD)

setup:
	@test -f $(BUILD)/build.ninja || meson setup $(BUILD) $(MESON_OPTS)

test: all
	meson test -C $(BUILD) --print-errorlogs $(if $(SUITE),--suite $(SUITE),--no-suite fullsize) ; \
	  status=$$?; tools/test-summary $(BUILD); exit $$status

test-asan:
	@test -f $(ASAN_BUILD)/build.ninja || meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined \
	  -Db_lundef=false -Dbuildtype=debug -Doptimization=1
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  meson test -C $(ASAN_BUILD) --print-errorlogs --suite engine --suite models --suite pipeline --timeout-multiplier 3 ; \
	  status=$$?; tools/test-summary $(ASAN_BUILD); exit $$status

install: all
	tools/install-plugin --build $(BUILD)

demo: all
	tools/gimp-demo --build $(BUILD)

demo-engine: all
	./$(BUILD)/engine/sdcl demo -o $(BUILD)/demo.png

screenshot: all
	tools/dialog-screenshot --build $(BUILD) --procedure inpaint

bench-engine: all
	bash -o pipefail -c './$(BUILD)/tests/bench-ops | tee $(BUILD)/bench-ops.txt'
	bash -o pipefail -c './$(BUILD)/tests/bench-models $(BUILD)/sd15-random.safetensors | tee $(BUILD)/bench-models.txt'
	bash -o pipefail -c './$(BUILD)/tests/bench-pipeline $(BUILD)/sd15-random.safetensors --sizes 512,256 \
	  --steps $(BENCH_STEPS) | tee $(BUILD)/bench-pipeline.txt'

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

else

# Not native: run the same target inside the Debian 13 root. The quality
# suite's SDCL_TEST_MODEL and SDCL_TEST_KEEP go along (paths inside the
# checkout: the root sees the checkout at the same path, not the host's /tmp).
ROOT_ENV = $(strip $(SDCL_ROOT_ENV) $(if $(SDCL_TEST_MODEL),SDCL_TEST_MODEL=$(SDCL_TEST_MODEL)) \
             $(if $(SDCL_TEST_KEEP),SDCL_TEST_KEEP=$(SDCL_TEST_KEEP)))
all test test-asan install demo demo-engine screenshot bench-engine clean:
	SDCL_ROOT_ENV='$(ROOT_ENV)' tools/sdcl-root make $@ BUILD=$(BUILD) ASAN_BUILD=$(ASAN_BUILD) SUITE=$(SUITE) \
	  MESON_OPTS='$(MESON_OPTS)' BENCH_STEPS=$(BENCH_STEPS)

endif

# Both ways: the engine (in the root where needed), then the peer on the host,
# then both side by side (tools/bench-summary).
bench: bench-engine
	@$(MAKE) --no-print-directory bench-peer BUILD=$(BUILD) PEER_PYTHON='$(PEER_PYTHON)'
	@tools/bench-summary $(BUILD)

bench-peer: all
	@rm -f $(BUILD)/bench-pair-engine.txt $(BUILD)/bench-pair-peer.txt $(BUILD)/bench-pair-peer.json \
	  $(BUILD)/bench-peer-ops.txt
	@if [ ! -x '$(PEER_PYTHON)' ]; then \
	  echo "bench-peer: skipped, no PyTorch venv at $(PEER_PYTHON) (python3 -m venv ~/.cache/sdcl-venv &&" \
	    "~/.cache/sdcl-venv/bin/pip install torch diffusers transformers safetensors numpy; or set PEER_PYTHON)"; \
	elif [ ! -f $(BUILD)/sd15-random.safetensors ]; then \
	  echo "bench-peer: no $(BUILD)/sd15-random.safetensors; make bench-engine writes it"; exit 1; \
	else \
	  echo 'tools/bench-pair: bench-pipeline and tests/bench-peer.py taking turns'; \
	  tools/bench-pair \
	    --engine '$(ENGINE_RUN) ./$(BUILD)/tests/bench-pipeline $(BUILD)/sd15-random.safetensors --sizes 512,256 --steps $(BENCH_STEPS) --paced' \
	    --peer "'$(PEER_PYTHON)' tests/bench-peer.py $(BUILD)/sd15-random.safetensors --configs models/configs/sd15 --steps $(BENCH_STEPS) --paced --json $(BUILD)/bench-pair-peer.json" \
	    --engine-out $(BUILD)/bench-pair-engine.txt --peer-out $(BUILD)/bench-pair-peer.txt \
	  && echo '$(PEER_PYTHON) tests/bench-peer-ops.py' \
	  && bash -o pipefail -c "'$(PEER_PYTHON)' tests/bench-peer-ops.py | tee $(BUILD)/bench-peer-ops.txt"; \
	fi
