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

# throughput of the streams runtime against redis-benchmark, as ratios
bench *ARGS:
    {{bin}}/python bench/streams.py {{ARGS}}

# the main job: until the end-to-end demo lands, the streams benchmark on this machine
demo:
    @echo "Modomo demo: the event core is in place; the full photo-to-dataset demo arrives with the pipeline, API and demo issues."
    @echo "Running the streams benchmark against the local Redis meanwhile:"
    {{bin}}/python bench/streams.py --events 50000
