#!/usr/bin/env bash
# One entry point for the README's two commands; it sets up its own environment.
#   bash scripts/run.sh main [options]   # the main job: a real experiment on local data + offline model
#   bash scripts/run.sh test [pytest options]   # e.g. -m "not slow" for the fast loop
# Creates .venv (override with PYTERRIER_HYBRID_VENV) on first use: torch==2.13.0 first
# (the CPU build served here), then this package with its [dev] extra.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${PYTERRIER_HYBRID_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
stamp="$venv/.installed-$(cat pyproject.toml setup.cfg | md5sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "[run.sh] installing into $venv (torch==2.13.0 first, then pyterrier-hybrid[dev])" >&2
  python -m pip install -q --upgrade pip
  python -m pip install -q torch==2.13.0
  python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi

# Offline defaults for this machine: the LAReQA mirror beside the project and no hub access.
if [ -z "${PYTERRIER_HYBRID_LAREQA_DIR:-}" ] && [ -d ../shared/data/lareqa ]; then
  PYTERRIER_HYBRID_LAREQA_DIR="$(cd ../shared/data/lareqa && pwd)"
  export PYTERRIER_HYBRID_LAREQA_DIR
fi
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"

cmd="${1:-}"
shift || true
case "$cmd" in
  main) exec python examples/main_job.py "$@" ;;
  # Two pytest-xdist workers, one test file each at a time (module fixtures stay per file; tests/conftest.py
  # gives each worker one torch thread). PYTERRIER_HYBRID_TEST_WORKERS=0 runs in this one process.
  test) exec python -m pytest -n "${PYTERRIER_HYBRID_TEST_WORKERS:-2}" --dist loadfile "$@" ;;
  *) echo "usage: bash scripts/run.sh {main|test} [args...]" >&2; exit 2 ;;
esac
