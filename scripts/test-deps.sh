#!/usr/bin/env bash
# Installs what the tests need that cargo does not bring: a Python virtualenv with the official
# OpenAI client (compatibility tests). Idempotent and quiet when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import openai' 2>/dev/null; then
  .venv/bin/pip install --quiet 'openai>=1.40'
fi
# The real Helm v4 SDK (no helm binary needed) for the chart tests in e2e/tests/chart.rs.
if ! .venv/bin/python -c 'import helm_python' 2>/dev/null; then
  .venv/bin/pip install --quiet 'helm-python-sdk==0.2.2'
fi
