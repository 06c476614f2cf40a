#!/usr/bin/env bash
# A separate environment for the peer in benchmarks/peer_compare.py: datacompy and whatever it
# pins (polars<1.45, pandas<3.1, numpy<2.6). It never touches the project venv (.venv), so
# datacompy's pins do not constrain migcheck.
#
#     bash benchmarks/peer_env.sh [VENV_DIR]      # default /tmp/migcheck-peer-venv
#
# Prints the path of the environment's python on its last line.
set -euo pipefail

VENV="${1:-${MIGCHECK_PEER_VENV:-/tmp/migcheck-peer-venv}}"
DATACOMPY="${DATACOMPY_SPEC:-datacompy==1.1.0}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
# let datacompy's own pins choose polars/pandas/numpy
"$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install --quiet "$DATACOMPY" pyarrow
"$VENV/bin/python" - <<'EOF' >&2
import datacompy, polars, pandas, numpy
print(f"peer env: datacompy {datacompy.__version__}, polars {polars.__version__}, "
      f"pandas {pandas.__version__}, numpy {numpy.__version__}")
EOF
echo "$VENV/bin/python"
