# Modomo's tasks. `just` comes from PyPI (rust-just) into .venv by scripts/bootstrap.sh.

set shell := ["bash", "-euo", "pipefail", "-c"]
set export

# Tests never reach a model hub or the network.
HF_HUB_OFFLINE := "1"
YOLO_OFFLINE := "1"
PYTHONHASHSEED := "0"

bin := justfile_directory() / ".venv/bin"

# list the recipes
default:
    @just --list

# create .venv, install everything, start Redis and PostgreSQL if they are down
setup:
    bash scripts/bootstrap.sh

# lint, type-check, check the review app, then every test (real Redis, PostgreSQL, Chromium)
test: lint web-check
    {{bin}}/pytest -q

# only the pure unit tests (no services needed)
test-unit:
    {{bin}}/pytest -q tests/unit

# ruff and mypy, checking only
lint:
    {{bin}}/ruff check modomo tests bench scripts
    {{bin}}/ruff format --check modomo tests bench scripts
    {{bin}}/mypy

# the review app: built if its sources changed, generated types current, tsc and unit tests
web-check:
    bash scripts/web.sh ensure
    bash scripts/web.sh check-types
    bash scripts/web.sh test

# build the review app (web/) into web/dist, which the API serves at /app
web:
    bash scripts/web.sh ensure

# regenerate the review app's types from the API's OpenAPI document (commit the result)
web-types:
    bash scripts/web.sh types

# screenshots of every page of the review app into docs/screenshots/ (a real stack, Chromium)
screenshots: web
    {{bin}}/python scripts/screenshots.py

# rewrite files to the project's format
fmt:
    {{bin}}/ruff check --fix modomo tests bench scripts
    {{bin}}/ruff format modomo tests bench scripts

# streams against redis-benchmark, projectors against COPY, the API, the pipeline, similarity,
# Redis memory, the review app
bench: web
    {{bin}}/python bench/streams.py
    {{bin}}/python bench/projections.py
    {{bin}}/python bench/api.py
    {{bin}}/python bench/pipeline.py
    {{bin}}/python bench/similarity.py
    {{bin}}/python bench/redis_memory.py
    {{bin}}/python bench/app.py

# apply pending SQL migrations to MODOMO_DATABASE_URL
migrate:
    {{bin}}/modomo migrate

# the main job, a summary and the app's link, then up until Ctrl-C (just demo 50; just demo --exit)
demo *args: web
    #!/usr/bin/env bash
    set -euo pipefail
    options=()
    for arg in {{args}}; do
        if [[ $arg =~ ^[0-9]+$ ]]; then options+=(--scenes "$arg"); else options+=("$arg"); fi
    done
    exec {{bin}}/modomo demo "${options[@]}"

# the services (S3, API with the review app, projectors, one GPU worker) until Ctrl-C
up: web
    {{bin}}/modomo up

# 200 scenes while worker, projectors, Redis, PostgreSQL, S3 are killed (--seed N, --long)
chaos *args:
    {{bin}}/python bench/chaos.py {{args}}

# the golden-set evaluation: 200 synthetic rooms with their truth, a live job, the scores
eval scenes="200":
    {{bin}}/modomo golden --scenes {{scenes}} --out .modomo/golden
    {{bin}}/modomo demo --golden .modomo/golden

# a dataset as of a log position: just export DATASET coco [--as-of ID|TIME] [--reviewed-only]
export dataset format *args:
    {{bin}}/modomo export {{dataset}} --format {{format}} {{args}}
