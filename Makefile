# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app portal
PORT ?= 5000
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# Stamps: pip runs again only when pyproject.toml changes. `make run` needs the runtime
# dependencies only; `make test` (and the developer targets) add the `test` extra.
RUNTIME := $(VENV)/.installed-runtime
TESTTOOLS := $(VENV)/.installed-test
CATALOGUES := $(patsubst %.po,%.mo,$(wildcard translations/*/LC_MESSAGES/messages.po))

.PHONY: run test install pdf-libs lint migration translations check-migrations bench bench-smoke wrk clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME): pyproject.toml | $(BIN)/python
	@echo "make: installing the portal's runtime packages into $(VENV) (once; again when pyproject.toml changes)"
	$(BIN)/pip install -q -e .
	touch $@

$(TESTTOOLS): pyproject.toml | $(BIN)/python
	@echo "make: installing the portal and its test tools into $(VENV) (once; again when pyproject.toml changes)"
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(RUNTIME)

# The compiled catalogues, each remade only when its .po changed.
translations/%/LC_MESSAGES/messages.mo: translations/%/LC_MESSAGES/messages.po $(RUNTIME)
	$(BIN)/pybabel -q compile -d translations -l $*

install: $(TESTTOOLS)

# WeasyPrint (PDF statements and receipts) draws with Pango in a system font: installed from
# Debian's packages when missing (as root), or the command to run is printed.
PDF_LIBS := libpango-1.0-0 libpangoft2-1.0-0 fontconfig fonts-dejavu-core
pdf-libs:
	@{ ldconfig -p | grep -q 'libpangoft2-1.0.so.0' && command -v fc-list >/dev/null 2>&1 && [ -n "$$(fc-list)" ]; } || { \
	  echo "make: installing Pango and a font for the PDFs ($(PDF_LIBS))"; \
	  { apt-get install -y -qq $(PDF_LIBS) >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $(PDF_LIBS) >/dev/null; }; } \
	  || { echo "make: could not install them; run 'apt-get install -y $(PDF_LIBS)' as root" >&2; exit 1; }; }

# Serve the portal on http://127.0.0.1:$(PORT) with SQLite, sandbox payments and mail in var/mail.
run: export PORTAL_BASE_URL ?= http://127.0.0.1:$(PORT)
run: export PORTAL_EMBEDDED_WORKER ?= 1
run: export PORTAL_ALLOW_PRIVATE_CALLBACKS ?= 1
run: $(RUNTIME) $(CATALOGUES) | pdf-libs
	@mkdir -p instance var/mail
	$(FLASK) db upgrade
	$(FLASK) demo
	@echo "Open $(PORTAL_BASE_URL)/ for the start page. Stop the portal with Ctrl+C."
	@$(FLASK) run --host 127.0.0.1 --port $(PORT)

# Branch coverage of portal/ that the suite must hold (measured: see docs/architecture.md).
COVERAGE_FLOOR ?= 95

# The whole suite; the PostgreSQL half runs when PORTAL_TEST_DATABASE_URL is set. Lint,
# format and types first: they take seconds and fail before the long part.
test: lint $(CATALOGUES) | pdf-libs
	$(BIN)/pytest -n 2 --cov=portal --cov-branch --cov-report=term:skip-covered \
	  --cov-fail-under=$(COVERAGE_FLOOR) $(PYTEST_ARGS)

lint: $(TESTTOOLS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# A new revision from the models' changes (released revisions are frozen): make migration MSG="…"
migration: install
	$(FLASK) db revision --autogenerate -m "$(MSG)"

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

bench: install wrk $(CATALOGUES)
	BENCH_ADMIN_URL=$(BENCH_ADMIN_URL) $(BIN)/python -m bench.run $(BENCH_ARGS)

# The same run with small data and one-second loads (< 60 s); results go to a temporary folder.
bench-smoke: install wrk $(CATALOGUES)
	BENCH_ADMIN_URL=$(BENCH_ADMIN_URL) $(BIN)/python -m bench.run --smoke $(BENCH_ARGS)

clean:
	rm -rf $(VENV) instance var
