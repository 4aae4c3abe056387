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

# lint, type-check, then every test against the real Redis and PostgreSQL
test: lint
    {{bin}}/pytest -q

# only the pure unit tests (no services needed)
test-unit:
    {{bin}}/pytest -q tests/unit

# ruff and mypy, checking only
lint:
    {{bin}}/ruff check modomo tests bench
    {{bin}}/ruff format --check modomo tests bench
    {{bin}}/mypy

# rewrite files to the project's format
fmt:
    {{bin}}/ruff check --fix modomo tests bench
    {{bin}}/ruff format modomo tests bench

# streams against redis-benchmark, projectors against COPY, the API, the pipeline, similarity,
# Redis memory
bench:
    {{bin}}/python bench/streams.py
    {{bin}}/python bench/projections.py
    {{bin}}/python bench/api.py
    {{bin}}/python bench/pipeline.py
    {{bin}}/python bench/similarity.py
    {{bin}}/python bench/redis_memory.py

# apply pending SQL migrations to MODOMO_DATABASE_URL
migrate:
    {{bin}}/modomo migrate

# the main job: services up, synthetic room photos uploaded, a live job, a summary
demo scenes="20":
    {{bin}}/modomo demo --scenes {{scenes}}

# the services (S3, API, projectors, one GPU worker) until Ctrl-C
up:
    {{bin}}/modomo up

# the golden-set evaluation: 200 synthetic rooms with their truth, a live job, the scores
eval scenes="200":
    {{bin}}/modomo golden --scenes {{scenes}} --out .modomo/golden
    {{bin}}/modomo demo --golden .modomo/golden

# a dataset as of a log position: just export DATASET coco [--as-of ID|TIME] [--reviewed-only]
export dataset format *args:
    {{bin}}/modomo export {{dataset}} --format {{format}} {{args}}
