#!/usr/bin/env bash
# The review app in web/ (React + TypeScript, built by Vite into web/dist, which the API
# serves at /app). Every step checks before it acts, so `ensure` is cheap when nothing changed.
#
#   scripts/web.sh install      npm ci (from the committed package-lock.json)
#   scripts/web.sh types        regenerate src/lib/api/{schema.d.ts,event-types.json} from the API
#   scripts/web.sh check-types  fail when the committed generated types differ from the API's
#   scripts/web.sh build        type-check and build into web/dist
#   scripts/web.sh ensure       install and build only if missing or older than the sources
#   scripts/web.sh test         type-check and run the unit tests of pure helpers (vitest)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
web="$root/web"
python="${PYTHON:-$root/.venv/bin/python}"
say() { printf '\033[1mweb:\033[0m %s\n' "$*" >&2; }

have_npm() { command -v npm >/dev/null; }
need_npm() { have_npm || { say "npm is missing: install Node.js 20.19+ (then bash scripts/bootstrap.sh)"; exit 1; }; }

install() { (cd "$web" && npm ci --no-audit --no-fund --loglevel=error); }

generate() {  # generate into folder $1
  local tmp; tmp="$(mktemp -d)"
  PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" "$python" -m modomo.api.schema_export "$tmp"
  mkdir -p "$1"
  (cd "$web" && npx --no-install openapi-typescript "$tmp/openapi.json" -o "$1/schema.d.ts" --silent)
  cp "$tmp/event-types.json" "$1/event-types.json"
  rm -rf "$tmp"
}

stale() {  # true when web/dist is missing or older than any source of the build
  [ -f "$web/dist/index.html" ] || return 0
  [ -n "$(find "$web/src" "$web/index.html" "$web/vite.config.ts" "$web/package-lock.json" \
      "$web/tsconfig.json" -newer "$web/dist/index.html" -print -quit)" ]
}

case "${1:-}" in
  install|types|check-types|build|test) need_npm ;;
  ensure)
    # `just demo` and `just up` run without the app rather than not at all.
    have_npm || { say "no npm: the review app is not built (the API answers /app with how to)"; exit 0; } ;;
esac

case "${1:-}" in
  install) install ;;
  types) generate "$web/src/lib/api"; say "generated web/src/lib/api/schema.d.ts and event-types.json" ;;
  check-types)
    fresh="$(mktemp -d)"
    generate "$fresh"
    for f in schema.d.ts event-types.json; do
      if ! diff -q "$fresh/$f" "$web/src/lib/api/$f" >/dev/null; then
        diff -u "$web/src/lib/api/$f" "$fresh/$f" | head -40 >&2 || true
        say "web/src/lib/api/$f is stale: the API changed; run \`just web-types\` and commit it"
        rm -rf "$fresh"; exit 1
      fi
    done
    rm -rf "$fresh"; say "generated types match the API" ;;
  build) (cd "$web" && npm run --silent build) ;;
  ensure)
    if [ ! -d "$web/node_modules" ] || [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
      say "installing the app's packages (npm ci)"; install
    fi
    if stale; then say "building the review app into web/dist"; (cd "$web" && npm run --silent build); fi ;;
  test) (cd "$web" && npm run --silent typecheck && npm run --silent test) ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
