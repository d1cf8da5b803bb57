# The README's two commands: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OPS := $(BIN)/civicq-ops

.PHONY: demo test lint clean venv db-up db-down db-status help migrate migrate-create rollback \
	migration-history seed-dev dev-reset schema-doc checks-doc health health-full analyze analyze-json \
	report monitor-connections monitor-slow-queries monitor-locks monitor-cache monitor-bloat monitor-autovacuum \
	monitor-table-stats monitor-sizes \
	indexes-unused indexes-missing indexes-usage bench bench-indexes backup backup-compressed backup-list backup-cleanup \
	restore prod-backup vacuum vacuum-table vacuum-full vacuum-auto vacuum-candidates plan daily weekly \
	prod-maintenance watch

help:
	@echo "make demo                 - install, start the local PostgreSQL, migrate, seed, back up, run the checks"
	@echo "make test                 - lint, then the whole test suite (PostgreSQL 18 and 15)"
	@echo "make lint                 - ruff, the import-linter layering contracts and mypy"
	@echo "make venv                 - create .venv with civicq-ops and the dev tools"
	@echo "make clean                - stop the local PostgreSQL and remove the venv and local state"
	@echo "make db-up                - start the local PostgreSQL"
	@echo "make db-down              - stop the local PostgreSQL"
	@echo "make db-status            - is the local PostgreSQL running, where, which version"
	@echo "make migrate              - apply the CivicQ migrations (alembic upgrade head)"
	@echo "make migrate-create MSG=  - a new migration file"
	@echo "make rollback [STEPS=1]   - undo migrations (asks first; production takes a safety backup)"
	@echo "make migration-history    - the migrations and which one is applied"
	@echo "make seed-dev             - development data"
	@echo "make dev-reset            - drop everything, migrate and seed again"
	@echo "make schema-doc           - regenerate docs/SCHEMA_REFERENCE.md"
	@echo "make checks-doc           - regenerate docs/checks.md"
	@echo "make health               - the quick checks"
	@echo "make health-full          - every check"
	@echo "make analyze              - every check, ok findings listed too"
	@echo "make analyze-json FILE=   - every check, as JSON into FILE"
	@echo "make report [FILE=r.html] - the analysis report: HTML with trends and forecasts"
	@echo "make monitor-connections  - every server process (civicq-ops inspect connections)"
	@echo "make monitor-slow-queries - statements by total time (inspect slow-queries)"
	@echo "make monitor-locks        - every lock, who blocks whom (inspect locks)"
	@echo "make monitor-cache        - cache hits per table (inspect cache)"
	@echo "make monitor-bloat        - dead rows and their space per table (inspect bloat)"
	@echo "make monitor-autovacuum   - dead rows against autovacuum's trigger point (inspect autovacuum)"
	@echo "make monitor-table-stats  - rows, writes and scans per table (inspect table-stats)"
	@echo "make monitor-sizes        - tables and indexes by size (inspect sizes)"
	@echo "make indexes-unused       - every index, least scanned first (inspect indexes)"
	@echo "make indexes-missing      - tables by rows read sequentially (inspect index-usage)"
	@echo "make indexes-usage        - every index by scans (inspect indexes)"
	@echo "make bench                - the benchmarks (checks, seed, backup, report, indexes)"
	@echo "make bench-indexes [SCALE=20] - the index migration's speedups and partial index sizes"
	@echo "make backup               - a verified-on-write backup (directory format)"
	@echo "make backup-compressed    - a backup in custom format, gzip level 9"
	@echo "make backup-list          - the backups"
	@echo "make backup-cleanup [YES=1] - apply the retention policy (a dry run without YES)"
	@echo "make restore FILE= [DB= CLEAN=1] - restore a backup into a new database (or over one)"
	@echo "make prod-backup          - back up and verify the prod target"
	@echo "make vacuum               - VACUUM (ANALYZE) what the checks say needs it"
	@echo "make vacuum-table TABLE=  - VACUUM (ANALYZE) one table"
	@echo "make vacuum-full TABLE=   - VACUUM FULL one table (locks it)"
	@echo "make vacuum-auto          - vacuum the tables autovacuum is behind on"
	@echo "make vacuum-candidates    - the tables that would be vacuumed"
	@echo "make plan                 - the remediation plan, into plan.json"
	@echo "make daily                - cron: backup, verify, cleanup, urgent vacuums, health"
	@echo "make weekly               - cron: vacuum, analyze, health, compressed backup restored to verify"
	@echo "make prod-maintenance     - the prod plan, for review"
	@echo "make watch                - run the checks on their intervals, alert, serve /metrics"
	@echo "make help                 - this list"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "civicq-ops needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@# Compiled once, as pip does for an installed wheel: with PYTHONDONTWRITEBYTECODE set (as on
	@# this machine) an editable install would compile every module on every start (~0.07 s).
	$(BIN)/python -m compileall -q civicq_ops >/dev/null
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

# Two pytest-xdist workers (this machine has two cores); each starts its own clusters. JOBS=0 runs
# the tests in this process (what --pdb and -x want).
test: lint
	$(BIN)/python -m pytest -q $(if $(filter 0,$(JOBS)),-p no:xdist,-n $(or $(JOBS),2)) $(PYTEST_ARGS)

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
report: $(STAMP)
	$(OPS) $(T) report --format html $(if $(FILE),--output html=$(FILE),--output html=report.html) > /dev/null
watch: $(STAMP)
	$(OPS) $(T) watch
# The seed's monitor and index commands: plain listings of every row (sortable, paged: see --help).
monitor-connections: $(STAMP)
	$(OPS) $(T) inspect connections
monitor-slow-queries: $(STAMP)
	$(OPS) $(T) inspect slow-queries
monitor-locks: $(STAMP)
	$(OPS) $(T) inspect locks
monitor-cache: $(STAMP)
	$(OPS) $(T) inspect cache
monitor-bloat: $(STAMP)
	$(OPS) $(T) inspect bloat
monitor-autovacuum: $(STAMP)
	$(OPS) $(T) inspect autovacuum
monitor-table-stats: $(STAMP)
	$(OPS) $(T) inspect table-stats
monitor-sizes: $(STAMP)
	$(OPS) $(T) inspect sizes
indexes-unused: $(STAMP)
	$(OPS) $(T) inspect indexes --sort idx_scan --asc
indexes-missing: $(STAMP)
	$(OPS) $(T) inspect index-usage --sort seq_tup_read
indexes-usage: $(STAMP)
	$(OPS) $(T) inspect indexes --sort idx_scan

bench: $(STAMP)
	scripts/ensure-bench-deps.sh
	$(BIN)/python -m compileall -q civicq_ops >/dev/null
	$(BIN)/python bench/run_checks.py
	$(BIN)/python bench/seed.py
	$(BIN)/python bench/backup.py
	$(BIN)/python bench/watch.py
	$(BIN)/python bench/report.py
	$(BIN)/python bench/indexes.py
	$(BIN)/python bench/db_lint.py
bench-indexes: $(STAMP)
	$(BIN)/python bench/indexes.py --scale $(or $(SCALE),20) --runs $(or $(RUNS),25)

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
# The health run comes before the restore test: restoring into a scratch database and dropping it
# forces checkpoints, which checkpoints-requested would otherwise report as the server's own.
weekly: $(STAMP)
	$(OPS) $(T) vacuum-auto --yes
	$(OPS) $(T) analyze --yes
	$(OPS) $(T) health --full
	$(OPS) $(T) backup create --format custom --compress gzip:9
	$(OPS) $(T) backup verify --latest --restore
prod-maintenance: $(STAMP)
	$(OPS) --target prod plan -o prod-plan.json --detailed-exitcode || [ $$? -eq 4 ]
	@echo "review prod-plan.json, then: civicq-ops --target prod apply prod-plan.json"
