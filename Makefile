# Two entry points (README): `make run` and `make test`. Everything else is a helper.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-$(shell cat requirements*.txt | sha256sum | cut -c1-12)
PORT    ?= 8000

.PHONY: install run test lint typecheck clean gpu-pack

$(STAMP): requirements.txt requirements-workbench.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# A local .env with a fresh secret key; never committed.
.env:
	sed "s|^SECRET_KEY=.*|SECRET_KEY=$$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')|" .env.example > .env

# The shipped model is the default; an untrained demo model is made only if it is missing.
run: install .env
	$(PY) manage.py migrate --noinput
	test -f "$$($(PY) manage.py shell --no-imports -c 'from django.conf import settings; print(settings.DEEPFAKE_CHECKPOINT)')" \
		|| $(PY) manage.py make_demo_checkpoint
	$(PY) manage.py create_demo_accounts
	$(PY) manage.py prepare_model
	@echo
	@echo "  Faceproof is starting at http://127.0.0.1:$(PORT)/  (Ctrl-C stops web and worker)"
	@echo
	PORT=$(PORT) $(VENV)/bin/honcho start --procfile Procfile

# Tests run with DEBUG off, as production does; they need a key, not a secret one.
test: install
	SECRET_KEY="$${SECRET_KEY:-insecure-key-for-tests-only}" $(VENV)/bin/pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	SECRET_KEY=typecheck $(VENV)/bin/mypy .

# What a training run on a lent GPU carries there (README: "Training on a lent GPU").
gpu-pack: install .env
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
		--platform manylinux2014_x86_64 -d .whl "$$(grep -hi '^facenet-pytorch==' requirements*.txt)"
	$(PY) manage.py accelerated_training pack --out var/gpu-pack

clean:
	rm -rf var/broker var/test-db.sqlite3 .pytest_cache .mypy_cache .ruff_cache
