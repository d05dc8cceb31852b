# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app portal
PORT ?= 5000

.PHONY: run test lint migrations translations check-migrations bench bench-smoke wrk clean

$(BIN)/flask: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/flask

# Serve the portal on http://127.0.0.1:$(PORT) with SQLite, sandbox payments and mail in var/mail.
run: export PORTAL_BASE_URL ?= http://127.0.0.1:$(PORT)
run: export PORTAL_EMBEDDED_WORKER ?= 1
run: export PORTAL_ALLOW_PRIVATE_CALLBACKS ?= 1
run: install
	mkdir -p instance var/mail
	$(BIN)/pybabel -q compile -d translations
	$(FLASK) db upgrade
	$(FLASK) demo
	$(FLASK) run --host 127.0.0.1 --port $(PORT)

# The whole suite; the PostgreSQL half runs when PORTAL_TEST_DATABASE_URL is set.
test: install
	$(BIN)/pybabel -q compile -d translations
	$(BIN)/ruff check .
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Regenerate the single initial migration from the models (until the first release).
migrations: install
	rm -f instance/migrate.db migrations/versions/*.py
	mkdir -p instance
	PORTAL_DATABASE_URL=sqlite:///$(CURDIR)/instance/migrate.db $(FLASK) db revision --autogenerate --rev-id 0001 -m initial
	rm -f instance/migrate.db

translations: install
	$(BIN)/pybabel -q extract -F babel.cfg -k _l -k lazy_gettext -o translations/messages.pot --no-location --sort-output .
	$(BIN)/pybabel -q update -i translations/messages.pot -d translations --no-fuzzy-matching --ignore-obsolete
	$(BIN)/python scripts/i18n.py fill-en
	$(BIN)/pybabel -q compile -d translations

# Benchmarks against a bare Flask page (bench/README.md): PostgreSQL on 127.0.0.1:5432 and wrk.
BENCH_ADMIN_URL ?= postgresql://postgres@127.0.0.1:5432/
wrk:
	@command -v wrk >/dev/null 2>&1 || { echo "bench: installing wrk (Debian package)"; \
	  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } \
	  || { echo "bench: could not install wrk; run 'apt-get install -y wrk' as root" >&2; exit 1; }; }

bench: install wrk
	$(BIN)/pybabel -q compile -d translations
	BENCH_ADMIN_URL=$(BENCH_ADMIN_URL) $(BIN)/python -m bench.run $(BENCH_ARGS)

# The same run with small data and one-second loads (< 60 s); results go to a temporary folder.
bench-smoke: install wrk
	$(BIN)/pybabel -q compile -d translations
	BENCH_ADMIN_URL=$(BENCH_ADMIN_URL) $(BIN)/python -m bench.run --smoke $(BENCH_ARGS)

clean:
	rm -rf $(VENV) instance var
