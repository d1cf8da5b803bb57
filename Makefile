# The README's two commands: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OPS := $(BIN)/civicq-ops

.PHONY: demo test lint clean venv db-up db-down db-status help migrate migrate-create rollback \
	migration-history seed-dev dev-reset schema-doc checks-doc health health-full analyze analyze-json \
	monitor-connections monitor-slow-queries monitor-locks monitor-cache monitor-bloat \
	indexes-unused indexes-missing indexes-usage bench backup backup-compressed backup-list backup-cleanup \
	restore prod-backup vacuum vacuum-table vacuum-full vacuum-auto vacuum-candidates plan daily weekly \
	prod-maintenance

help:
	@echo "make demo   - install, start the local PostgreSQL, and show the report"
	@echo "make test   - install and run the whole test suite (PostgreSQL 18 and 15)"
	@echo "make lint   - ruff, the import-linter layering contracts and mypy"
	@echo "make clean  - stop the local PostgreSQL and remove the venv and local state"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "civicq-ops needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(OPS) db up
	$(OPS) db migrate
	$(OPS) db seed
	$(OPS) db status
	$(OPS) backup create
	$(OPS) backup verify --latest
	@echo
	-$(OPS) run checks

test: lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check civicq_ops tests bench seeds migrations
	$(BIN)/lint-imports
	$(BIN)/mypy

db-up: $(STAMP)
	$(OPS) db up
db-down: $(STAMP)
	$(OPS) db down
db-status: $(STAMP)
	$(OPS) db status

clean:
	-@[ -x $(OPS) ] && $(OPS) db down || true
	rm -rf $(VENV) .civicq-ops build *.egg-info .pytest_cache .ruff_cache

# The seed's database targets, as thin wrappers (TARGET=name picks a target from civicq-ops.yaml).
T := $(if $(TARGET),--target $(TARGET),)
migrate: $(STAMP)
	$(OPS) $(T) db migrate
migrate-create: $(STAMP)
	@[ -n "$(MSG)" ] || { echo 'usage: make migrate-create MSG="what it does"'; exit 2; }
	$(OPS) db migrate-create "$(MSG)"
rollback: $(STAMP)
	$(OPS) $(T) db rollback --steps $(or $(STEPS),1)
migration-history: $(STAMP)
	$(OPS) db history
seed-dev: $(STAMP)
	$(OPS) $(T) db seed
dev-reset: $(STAMP)
	$(OPS) $(T) db reset --yes
schema-doc: $(STAMP)
	$(OPS) $(T) db schema-doc
checks-doc: $(STAMP)
	$(OPS) checks doc

# The seed's monitoring targets: thin wrappers over `run checks`.
health: $(STAMP)
	$(OPS) $(T) health
health-full: $(STAMP)
	$(OPS) $(T) health --full
analyze: $(STAMP)
	$(OPS) $(T) run checks --verbose
analyze-json: $(STAMP)
	@[ -n "$(FILE)" ] || { echo 'usage: make analyze-json FILE=report.json'; exit 2; }
	$(OPS) $(T) run checks --format json --output json=$(FILE) > /dev/null
monitor-connections: $(STAMP)
	$(OPS) $(T) run checks --category connections --verbose
monitor-slow-queries: $(STAMP)
	$(OPS) $(T) run checks --check slow-queries,top-queries-by-total-time,long-running-queries --verbose
monitor-locks: $(STAMP)
	$(OPS) $(T) run checks --category locks --verbose
monitor-cache: $(STAMP)
	$(OPS) $(T) run checks --category cache --verbose
monitor-bloat: $(STAMP)
	$(OPS) $(T) run checks --tag bloat --verbose
indexes-unused: $(STAMP)
	$(OPS) $(T) run checks --check unused-indexes --verbose
indexes-missing: $(STAMP)
	$(OPS) $(T) run checks --check missing-indexes,fk-without-index --verbose
indexes-usage: $(STAMP)
	$(OPS) $(T) run checks --check largest-indexes,unused-indexes,index-cache-hit-ratio --verbose

bench: $(STAMP)
	$(BIN)/python bench/run_checks.py
	$(BIN)/python bench/seed.py
	$(BIN)/python bench/backup.py
	$(BIN)/python bench/watch.py

# The seed's backup targets.
backup: $(STAMP)
	$(OPS) $(T) backup create
backup-compressed: $(STAMP)
	$(OPS) $(T) backup create --format custom --compress gzip:9
backup-list: $(STAMP)
	$(OPS) $(T) backup list
backup-cleanup: $(STAMP)
	$(OPS) $(T) backup cleanup $(if $(YES),--yes,)
restore: $(STAMP)
	@[ -n "$(FILE)" ] || { echo 'usage: make restore FILE=<backup id> [DB=name CLEAN=1]'; exit 2; }
	$(OPS) $(T) restore $(FILE) $(if $(DB),--target-db $(DB),) $(if $(CLEAN),--clean,)
prod-backup: $(STAMP)
	$(OPS) --target prod backup create --format directory
	$(OPS) --target prod backup verify --latest

# The seed's maintenance targets: plans applied through apply's guards and audit.
vacuum: $(STAMP)
	$(OPS) $(T) vacuum --yes
vacuum-table: $(STAMP)
	@[ -n "$(TABLE)" ] || { echo 'usage: make vacuum-table TABLE=schema.table'; exit 2; }
	$(OPS) $(T) vacuum --table $(TABLE) --yes
vacuum-full: $(STAMP)
	@[ -n "$(TABLE)" ] || { echo 'usage: make vacuum-full TABLE=schema.table (VACUUM FULL locks the table)'; exit 2; }
	$(OPS) $(T) vacuum --full --table $(TABLE) --yes
vacuum-auto: $(STAMP)
	$(OPS) $(T) vacuum-auto --yes
vacuum-candidates: $(STAMP)
	$(OPS) $(T) vacuum-candidates
plan: $(STAMP)
	$(OPS) $(T) plan -o plan.json

# Scheduled jobs (cron: 0 2 * * * make daily; 0 3 * * 0 make weekly).
daily: $(STAMP)
	$(OPS) $(T) backup create
	$(OPS) $(T) backup verify --latest
	$(OPS) $(T) backup cleanup --yes
	$(OPS) $(T) vacuum-auto --level critical --yes
	$(OPS) $(T) health
weekly: $(STAMP)
	$(OPS) $(T) vacuum-auto --yes
	$(OPS) $(T) analyze --yes
	$(OPS) $(T) backup create --format custom --compress gzip:9
	$(OPS) $(T) backup verify --latest --restore
	$(OPS) $(T) health --full
prod-maintenance: $(STAMP)
	$(OPS) --target prod plan -o prod-plan.json --detailed-exitcode || [ $$? -eq 4 ]
	@echo "review prod-plan.json, then: civicq-ops --target prod apply prod-plan.json"
