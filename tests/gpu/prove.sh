#!/usr/bin/env bash
# The GPU proof in one command (issue 17): install what an offline GPU node lacks from the carried folder that
# tests/gpu/wheelhouse.py fills, then run tests/gpu/prove.py. Under 10 minutes on one H100.
#   bash tests/gpu/prove.sh OUT                  # GPU: DAG x {single, zero2, zero3} in bf16, then the benchmarks
#   bash tests/gpu/prove.sh OUT --cpu            # the same checks on the CPU (the slow suite runs this)
#   bash tests/gpu/prove.sh OUT --skip bench     # split across two calls when a call is capped at 10 minutes
# GPU_CARRY names the carried folder (default .gpu_carry); without one the installed environment is used.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: prove.sh OUT [--cpu] [--skip dag|bench]}
shift
mkdir -p "$out"
carry=${GPU_CARRY:-.gpu_carry}
exec > >(tee "$out/prove.log") 2>&1
if [ -d "$carry/wheels" ]; then
  site=${GPU_SITE:-/tmp/gsm_site}
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "$carry"/wheels/*.whl
  # Compiled packages PyPI has only as sdists (pycosat, for reasoning-gym's puzzles) build with the node's compiler.
  for sdist in "$carry"/sdists/*; do
    [ -e "$sdist" ] || continue
    python3 -m pip install -q --no-index --no-deps --no-build-isolation --target "$site" "$sdist" \
      || echo "could not build $sdist: only the embedded reasoning-gym data needs it, not this proof"
  done
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PATH="$site/bin:$PATH"
  python3 -m pip check >"$out/pip_check.txt" 2>&1 && echo "pip check: no broken requirements" \
    || { echo "pip check (all of $out/pip_check.txt):"; head -20 "$out/pip_check.txt"; }
fi
python3 tests/gpu/prove.py --out "$out" --carry "$carry" "$@"
