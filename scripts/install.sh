#!/usr/bin/env bash
# Install the course's Python environment into .venv (idempotent; fast when nothing changed).
#   scripts/install.sh            the course environment (.venv)
#   scripts/install.sh ipython-sql   also .venv-ipysql: the same, with ipython-sql instead of JupySQL
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
UV_VERSION=0.13.9

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: the course needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1))." >&2
  echo "       Install it (Debian/Ubuntu: apt-get install python3 python3-venv) or set PYTHON=python3.12" >&2
  exit 1
fi

stamp_of() { cat requirements.txt pyproject.toml | sha256sum | cut -c1-16; }

make_venv() {  # make_venv DIR
  local dir=$1
  if [ ! -x "$dir/bin/python" ]; then
    echo "creating $dir"
    "$PYTHON" -m venv "$dir" || { echo "error: '$PYTHON -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2; exit 1; }
  fi
  if [ ! -x "$dir/bin/uv" ]; then
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  fi
}

install_main() {
  local stamp
  stamp=$(stamp_of)
  if [ -f .venv/.installed ] && [ "$(cat .venv/.installed)" = "$stamp" ]; then
    return
  fi
  make_venv .venv
  echo "installing the course environment into .venv"
  .venv/bin/uv pip install --quiet --python .venv/bin/python -r requirements.txt
  .venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps -e .
  echo "$stamp" > .venv/.installed
}

install_ipython_sql() {
  local stamp
  stamp=$(stamp_of)-ipysql
  if [ -f .venv-ipysql/.installed ] && [ "$(cat .venv-ipysql/.installed)" = "$stamp" ]; then
    return
  fi
  make_venv .venv-ipysql
  echo "installing the ipython-sql variant into .venv-ipysql"
  local reqs
  reqs=$(mktemp)
  grep -v -i '^jupysql' requirements.txt > "$reqs"
  cat requirements-ipython-sql.txt >> "$reqs"
  .venv-ipysql/bin/uv pip install --quiet --python .venv-ipysql/bin/python -r "$reqs"
  .venv-ipysql/bin/uv pip install --quiet --python .venv-ipysql/bin/python --no-deps -e .
  rm -f "$reqs"
  echo "$stamp" > .venv-ipysql/.installed
}

install_main
if [ "${1:-}" = "ipython-sql" ]; then
  install_ipython_sql
fi
