# Two entry points for a fresh machine (see README):
#   make demo  - set up .venv, generate an example folder, run `nnaudio extract` and `nnaudio info`
#   make test  - set up .venv with the test extra, lint, run the test suite
PY := .venv/bin/python

.PHONY: setup setup-test demo test test-fast bench clean

setup:
	bash scripts/setup.sh

setup-test:
	bash scripts/setup.sh test

demo: setup
	$(PY) scripts/make_example.py example/audio
	.venv/bin/nnaudio extract example/audio example/features.h5 --config configs/mel128.toml --overwrite
	.venv/bin/nnaudio info example/features.h5

test: setup-test
	.venv/bin/ruff check .
	$(PY) -m pytest -q

# the edit loop: lint and every test not marked slow (the venv must exist: make setup-test)
test-fast:
	.venv/bin/ruff check .
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) -m pip install -q 'librosa==0.11.0' nnaudio2
	$(PY) benchmarks/bench_core.py --clips 1770

clean:
	rm -rf example .pytest_cache .ruff_cache
