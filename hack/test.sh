#!/usr/bin/env bash
# Run the whole test suite: generated code check, lint, unit, integration, e2e.
# Every daemon the tests need (etcd, the master) is started by the tests'
# own fixtures on free ports and stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/install-deps.sh
bash hack/start-docker.sh
bash hack/build-images.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@" tests
