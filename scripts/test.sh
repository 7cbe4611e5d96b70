#!/usr/bin/env bash
# The whole test suite: install what is missing, start the database servers, run every test.
# This is what `make test` and CI (.ci/run) run. Exit status: 0 only when everything passed.
set -uo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)

scripts/install.sh ipython-sql || exit 1
export PATH="$PWD/.venv/bin:$PATH"
export IPYTHONDIR="$PWD/tests/ipython" PLOOMBER_STATS_ENABLED=false PYDEVD_DISABLE_FILE_VALIDATION=1

# Start what is missing; at the end, stop exactly what this run started.
started=$(mktemp)
stop_started() {
  if [ -s "$started" ]; then
    echo "== stopping the servers this run started: $(tr '\n' ' ' < "$started")"
    # shellcheck disable=SC2046
    dbcourse services down $(cat "$started") >/dev/null
  fi
  rm -f "$started"
}
trap stop_started EXIT

# Tools the tests use that do not come from PyPI: Docker Compose 1.29 validates docker/compose.yml
# without an engine; Chromium runs the browser test.
missing=()
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing ${missing[*]} (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || { echo "error: apt-get install ${missing[*]} failed" >&2; exit 1; }
  else
    echo "warning: ${missing[*]} not installed (needs root + apt-get); the tests that use them will fail" >&2
  fi
fi

echo "== database servers"
dbcourse services up --install --started-file "$started" || { echo "error: the servers did not all start" >&2; exit 1; }
t_services=$(date +%s)

failed=()
run() {  # run NAME COMMAND...: run a step, remember whether it failed
  local name=$1; shift
  echo
  echo "== $name"
  if ! "$@"; then failed+=("$name"); fi
}

NBVAL=(--nbval --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg --nbval-cell-timeout=600)

run "learner notebooks are generated from solutions" dbcourse release --check
run "unit tests, notebook pairs, all notebooks (JupySQL)" \
  python -m pytest -q -n 2 --dist loadfile tests notebooks solutions "${NBVAL[@]}"
mapfile -t magic_notebooks < <(grep -l -- '%load_ext sql' solutions/*.ipynb)
run "notebooks that use %sql, under ipython-sql 0.5.0" \
  .venv-ipysql/bin/python -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env \
  --nbval-cell-timeout=600 "${magic_notebooks[@]}"

t_end=$(date +%s)
echo
echo "== wall time: $((t_end - t0)) s (install + servers $((t_services - t0)) s, tests $((t_end - t_services)) s)"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "ALL PASSED"
