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
# A local S3-compatible endpoint (`moto_server`) for the model-files fetch/backup/restore tests.
if [ ! -x .venv/bin/moto_server ]; then
  .venv/bin/pip install --quiet 'moto[server]>=5'
fi
