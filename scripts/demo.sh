#!/usr/bin/env bash
# Set up (first run only) and run the demo: examples/demo.py
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
exec .venv/bin/python examples/demo.py "$@"
