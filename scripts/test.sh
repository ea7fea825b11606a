#!/usr/bin/env bash
# Set up (first run only) and run the test suite. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m slow` for the long soak and scale runs.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
exec .venv/bin/python -m pytest -n 2 -q "$@"
