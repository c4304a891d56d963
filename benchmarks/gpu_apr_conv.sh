#!/usr/bin/env bash
# Issue 18 device check, < 5 minutes on one NVIDIA GPU (H100/H200): the fused APR tile kernel (numba-cuda).
#   OUT=/some/dir bash benchmarks/gpu_apr_conv.sh        (default OUT: ./gpu_out)
# Dry run without a GPU (numba's CUDA simulator, tiny sizes, no install):
#   NUMBA_ENABLE_CUDASIM=1 SKIP_INSTALL=1 SIZE=32 SWEEP=32:60 bash benchmarks/gpu_apr_conv.sh
# 1. installs this working tree without dependencies (uses what the machine has: numpy, scipy, numba-cuda, torch);
# 2. env.txt: card, driver, package versions;
# 3. check.json: the kernel vs our CPU kernel (2D/3D, >= 4 levels, 3/5/7 stencils, frames, zero padding) and the
#    device filters / segmentation vs their CPU paths (napari_dynfit.bench.gpu_apr_check; exit 1 if they disagree);
# 4. gpu_apr_conv.json: `dynfit bench apr-conv --device cuda`: 5^3 Gaussian on a 1024^3 pixel-equivalent APR with
#    computational ratio ~30 (CUDA events, data resident and end to end, 4 frames x 4 stencils batched), cuDNN conv3d
#    and the previous torch path in the same run, and the size sweep (sizes that would overrun the budget are listed
#    as skipped).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"  # the working tree is what runs, whatever pip does
PY="${PYTHON:-python3}"
start=$(date +%s)
if [ -z "${SKIP_INSTALL:-}" ]; then
    "$PY" -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/pip.log" 2>&1 \
        || echo "pip install failed (see pip.log): running from src/ on PYTHONPATH" | tee -a "$OUT/pip.log"
fi
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    "$PY" - <<'PYEOF'
import importlib, sys
print("python", sys.version.split()[0])
for m in ("numpy", "scipy", "numba", "numba_cuda", "torch", "triton", "cupy", "skimage", "pandas", "napari_dynfit"):
    try:
        mod = importlib.import_module(m)
        print(m, getattr(mod, "__version__", "?"), getattr(mod, "__file__", ""))
    except Exception as exc:  # noqa: BLE001
        print(m, "MISSING:", exc)
from numba import cuda
print("numba.cuda available:", cuda.is_available())
PYEOF
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
timeout "${CHECK_TIMEOUT:-150}" "$PY" -m napari_dynfit.bench.gpu_apr_check >"$OUT/check.json" 2>"$OUT/check.err"
echo "check rc=$? ($(( $(date +%s) - start )) s)"; tail -n 5 "$OUT/check.json"; tail -n 3 "$OUT/check.err"
left=$(( ${TOTAL_S:-285} - ($(date +%s) - start) ))
timeout "$left" "$PY" -m napari_dynfit.cli bench apr-conv --device cuda --size "${SIZE:-1024}" --ratio 30 \
    --repeat "${REPEAT:-10}" --frames 4 --stencils 4 --sweep "${SWEEP:-256:10,256:100,256:300,512:30,1024:10,1024:300,2048:300}" \
    --budget-s $(( left - 60 )) --overwrite -o "$OUT/gpu_apr_conv.json" >"$OUT/bench.log" 2>&1
echo "bench rc=$? ($(( $(date +%s) - start )) s)"
tail -n 40 "$OUT/bench.log"
