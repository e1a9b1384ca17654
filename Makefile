# The two commands: `make run` and `make test`. Both bootstrap .venv on a fresh machine.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test bench lint clean

# Playwright (a dev dependency) drives Debian's Chromium; it must never fetch a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

$(STAMP): pyproject.toml package.json package-lock.json
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@# The docs pages' browser files (Swagger UI, the AsyncAPI component) are served by the
	@# services themselves: intranets reach no CDN. Exact versions in package-lock.json;
	@# --ignore-scripts: the files are all we need, and swagger-ui-dist's dependency
	@# @scarf/scarf would otherwise report the install to its vendor.
	@command -v npm >/dev/null || { echo "npm is needed (Debian: apt-get install -y npm)"; exit 1; }
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@# tests/e2e/test_offline_pages.py opens those pages in Debian's Chromium: installed here
	@# when missing (CI's machine starts without it), where apt-get can (as root).
	@test -x /usr/bin/chromium || ! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ] \
		|| { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
	@# A Chinese font, so the dashboard's screenshots (tests/e2e/test_dashboard.py) show text.
	@fc-list :lang=zh 2>/dev/null | grep -q . || ! command -v apt-get >/dev/null \
		|| [ "$$(id -u)" != 0 ] || apt-get install -y -qq fonts-wqy-zenhei >/dev/null
	@# The report document's PDF embeds this font (TONGXIN_PDF_FONT), and its test draws a page
	@# with poppler (pdftoppm, pdftotext, pdfimages): both installed here when missing.
	@test -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc || ! command -v apt-get >/dev/null \
		|| [ "$$(id -u)" != 0 ] || apt-get install -y -qq fonts-wqy-zenhei >/dev/null
	@command -v pdftoppm >/dev/null || ! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ] \
		|| { apt-get update -qq && apt-get install -y -qq poppler-utils >/dev/null; }
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/tongxin up

test: $(STAMP)
	$(BIN)/python -m pytest

# Issue 13's speed table in one run (PostgreSQL at TONGXIN_TEST_POSTGRES_URL; NATS at
# TONGXIN_NATS_URL, else an embedded server). Smaller: `make bench EVENTS=20000 LATENCY_SECONDS=10`.
EVENTS ?= 1000000
RATE ?= 1000
LATENCY_SECONDS ?= 60
CONDITIONS ?=
bench: $(STAMP)
	$(BIN)/python -m bench.speed --events $(EVENTS) --rate $(RATE) --seconds $(LATENCY_SECONDS) \
		--conditions "$(CONDITIONS)"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache node_modules
