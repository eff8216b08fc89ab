# Set-up and the two commands the README promises. Everything installs from scratch on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint

# System packages (Debian/Ubuntu, when run as root): the real Fashion-MNIST for the offline demo and
# espeak-ng for the audio tests. Without root they are skipped; Fashion-MNIST then comes from torchvision's
# downloader and the tests that need these packages are skipped.
system:
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  (dpkg -s dataset-fashion-mnist espeak-ng >/dev/null 2>&1 || \
	   (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist espeak-ng >/dev/null)) \
	  || echo "note: could not install dataset-fashion-mnist/espeak-ng; Fashion-MNIST will be downloaded by torchvision"; \
	else echo "note: not root; skipping system packages (Fashion-MNIST will be downloaded by torchvision)"; fi

$(BIN)/aip: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[all,test]'
	touch $(BIN)/aip

setup: system $(BIN)/aip

demo: setup
	$(BIN)/aip run recipes/fashion-mnist.toml

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout 600 -n auto --maxprocesses 4

lint: setup
	$(BIN)/ruff check aip modalities tests examples
