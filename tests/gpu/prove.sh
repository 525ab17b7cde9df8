#!/usr/bin/env bash
# The GPU proof (issues 17, 32): install what an offline GPU node lacks from the carried folder that
# tests/gpu/wheelhouse.py fills, then run tests/gpu/prove.py's parts. A lent GPU gives about 15 minutes in all:
#   bash tests/gpu/prove.sh OUT --only smoke     # first call: install, pip check, one bf16 stage (< 3 minutes)
#   bash tests/gpu/prove.sh OUT --skip smoke     # second: DAG x {single, zero2, zero3}, both benchmarks (< 6)
#   bash tests/gpu/prove.sh OUT --cpu            # every part on the CPU (the slow suite runs this)
#   bash tests/gpu/prove.sh OUT --only dag       # any part alone: smoke, dag, training, generation
# GPU_CARRY names the carried folder (default .gpu_carry); without one the installed environment is used.
# OUT gets at most four files (prove.json, prove.log, the two benchmarks' JSON); calls into one OUT add up.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: prove.sh OUT [--cpu] [--only PART...] [--skip PART...]}
shift
mkdir -p "$out"
carry=${GPU_CARRY:-.gpu_carry}
exec > >(tee -a "$out/prove.log") 2>&1
if [ -d "$carry/wheels" ]; then
  site=${GPU_SITE:-/tmp/gsm_site}
  # A machine kept warm between the two calls keeps the site: install once per set of wheels.
  stamp=$(ls "$carry"/wheels "$carry"/sdists 2>/dev/null | sha256sum | cut -c1-16)
  if [ "$(cat "$site/.installed" 2>/dev/null)" != "$stamp" ]; then
    start=$SECONDS
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
      "$carry"/wheels/*.whl
    # Compiled packages PyPI has only as sdists (pycosat, for reasoning-gym's puzzles) build with the node's compiler.
    for sdist in "$carry"/sdists/*; do
      [ -e "$sdist" ] || continue
      python3 -m pip install -q --no-index --no-deps --no-build-isolation --target "$site" "$sdist" \
        || echo "could not build $sdist: only the embedded reasoning-gym data needs it, not this proof"
    done
    echo "$stamp" >"$site/.installed"
    echo "installed the carried wheels in $((SECONDS - start)) s"
  fi
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PATH="$site/bin:$PATH"
  python3 -m pip check && echo "pip check: no broken requirements" || echo "pip check found the clashes above"
fi
python3 tests/gpu/prove.py --out "$out" --carry "$carry" "$@"
