SHELL := /bin/bash
# Bun installed by npm lands in npm's global bin, which may not be on PATH yet.
export PATH := $(HOME)/.bun/bin:$(shell npm prefix --global 2>/dev/null)/bin:$(PATH)

.PHONY: dev test bench bench-search-flood backup restore typecheck lint

## dev: install what is missing, start Postgres/Redis if none answer, migrate, seed, run the API
dev:
	@scripts/dev.sh

## test: the whole test suite against a fresh database of its own
test:
	@scripts/test.sh

## bench: the hot paths against their raw ceilings, side by side (not part of make test)
bench:
	@scripts/bench.sh

## bench-search-flood: product pages' p99 alone and beside a flood of uncached searches
bench-search-flood:
	@scripts/bench.sh bench/search-flood.ts

## backup: a pg_dump -Fc of DATABASE_URL into BACKUP_DIR (backups/); prints the file's path last
backup:
	@scripts/backup.sh

## restore FILE=<path>: a backup into DATABASE_URL (created if missing; refused if it has tables, unless FORCE=1)
restore:
	@scripts/restore.sh

typecheck:
	@bun run typecheck

## lint: Biome, with the layer rules (lib/ and db/ never import modules/ or jobs/)
lint:
	@bun run --silent lint
