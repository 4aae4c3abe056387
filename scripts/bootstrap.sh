#!/usr/bin/env bash
# Sets up a fresh clone: a virtual environment in .venv with Modomo and its dev tools, and
# the local Redis and PostgreSQL that the tests talk to (started if installed but down,
# installed from Debian's packages first if missing and we are root).
# Safe to run again: every step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1mbootstrap:\033[0m %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null || die "no $PYTHON on PATH: install Python 3.11 or newer"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python 3.11 or newer is needed, found $("$PYTHON" --version 2>&1)"

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check "$@"; }
say "installing the model stack (torch, ultralytics, sam2, transformers, open_clip) into .venv"
pip install --quiet torch==2.14.1 torchvision==0.29.1
# sam2 is source-only on PyPI; built against the torch above, without its optional CUDA
# extension (hole filling only), and without build isolation (which would fetch a second
# torch just to build it).
pip install --quiet setuptools wheel
if ! .venv/bin/python -c 'import sam2' 2>/dev/null; then
  SAM2_BUILD_CUDA=0 pip install --quiet --no-build-isolation sam2==1.1.0
fi
say "installing modomo with its gpu and dev extras into .venv"
pip install --quiet -e '.[gpu,dev]'

REDIS_URL=${MODOMO_REDIS_URL:-redis://127.0.0.1:6379/0}
redis_up() {
  .venv/bin/python - "$REDIS_URL" <<'PY' 2>/dev/null
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()
PY
}
postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing $* from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
  else
    return 1
  fi
}
embedded() {
  # Not root and not installed: `modomo demo` and `modomo up` start embedded servers from
  # pip packages instead; the test suite needs the real services.
  say "$1 is not running and cannot be installed without root: \`just demo\` will use an"
  say "embedded one from pip; for \`just test\` install it (sudo apt-get install $2)."
}

if ! redis_up; then
  if [ -n "${MODOMO_REDIS_URL:-}" ]; then
    die "Redis at MODOMO_REDIS_URL does not answer"
  fi
  if command -v redis-server >/dev/null || apt_install redis-server; then
    say "starting redis-server on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 50); do redis_up && break; sleep 0.1; done
    redis_up || die "redis-server did not come up on 127.0.0.1:6379"
  else
    embedded Redis redis-server
  fi
fi
command -v redis-benchmark >/dev/null || apt_install redis-tools || true
# promtool validates the alert rules in the tests; without root, install it by hand.
if ! command -v promtool >/dev/null && [ "$(id -u)" = 0 ]; then apt_install prometheus; fi

if ! postgres_up; then
  have_cluster=0
  if ls /etc/postgresql/*/main >/dev/null 2>&1; then
    have_cluster=1
  elif apt_install postgresql; then
    have_cluster=1
    # A cluster just installed for development: let loopback connect without a password,
    # as on the machines this project is developed on.
    sed -i '1i host all all 127.0.0.1/32 trust' "$(ls /etc/postgresql/*/main/pg_hba.conf | sort -V | tail -n 1)"
  fi
  if [ "$have_cluster" = 1 ]; then
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start \
      || die "PostgreSQL would not start"
    for _ in $(seq 50); do postgres_up && break; sleep 0.2; done
    postgres_up || die "PostgreSQL did not come up on 127.0.0.1:5432"
  else
    embedded PostgreSQL postgresql
  fi
fi
# The fault tests put a pgbouncer in transaction mode in front of a cluster of their own.
# Its Debian package would also start a system service: keep it stopped.
if ! command -v pgbouncer >/dev/null && [ "$(id -u)" = 0 ]; then
  apt_install pgbouncer || true
  { command -v systemctl >/dev/null && systemctl disable --now pgbouncer >/dev/null 2>&1; } || true
fi
# The tests use a database of their own, named test.
if postgres_up && ! psql -h 127.0.0.1 -U postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'test'" \
    2>/dev/null | grep -q 1; then
  say "creating the test database"
  psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null \
    || die "could not create the test database as postgres on 127.0.0.1"
fi
# The review app (web/): Node.js 20.19+ with npm builds it; Chromium runs its browser tests
# (driven by Playwright through its path: no browser download).
if [ ! -x /usr/bin/chromium ] && ! command -v chromium >/dev/null; then
  apt_install chromium || say "no Chromium: the browser tests need it (sudo apt-get install chromium)"
fi
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -ge 20 ] && command -v npm >/dev/null; then
  say "installing and building the review app (web/, npm ci from package-lock.json)"
  bash scripts/web.sh install
  bash scripts/web.sh build
else
  say "no Node.js 20+: the review app (web/) is not built; the API answers /app with how to build it"
fi
say "ready: Redis at $REDIS_URL, PostgreSQL at 127.0.0.1:5432"
