#!/usr/bin/env bash
# One device session (< 9 minutes on one NVIDIA H100/H200; no pyapr there): every GPU check of the project.
#   OUT=/some/dir CLOSURE=path/closure.npz bash benchmarks/gpu_session.sh     (default OUT: ./gpu_out)
# 1. env.txt: card, driver, package versions (and the pip log's tail);
# 2. models.json: issue 19's kinetic solver and moment model (learned and Bingham closures) on the GPU against
#    the CPU (same state, float64) and their time per step; issue 20's Bayesian latent field on both devices
#    (napari_dynfit.bench.gpu_models_check);
# 3. closure.json: issue 19's paired stationary ensembles (`python -m napari_dynfit.bench.closure --steps
#    stationary --device cuda`) at the held-out alphas and outside the range, MEMBERS members each, with the
#    trained closure CLOSURE (made on a CPU: `--steps a_priori,a_posteriori --save-closure`); rewritten after
#    each alpha, so a time-out keeps the finished ones;
# 4. apr_check.json, gpu_apr_conv.json: issue 18's fused APR tile kernel against the CPU kernel, and
#    `dynfit bench apr-conv --device cuda` (1024^3 pixel-equivalent, ratio ~30, cuDNN and the torch path beside it,
#    the size sweep within the time left).
# Everything else goes to session.log. Each part has its own time limit; a failing part does not stop the others.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_out}"
mkdir -p "$OUT"
# numpy_compat: np.row_stack for numba-cuda 0.30 under numpy >= 2.5 (seen on the H200 image, 2026-12-04)
export PYTHONPATH="$PWD/src:$PWD/benchmarks/numpy_compat${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
LOG="$OUT/session.log"
start=$(date +%s)
el() { echo $(( $(date +%s) - start )); }
if [ -z "${SKIP_INSTALL:-}" ]; then
    "$PY" -m pip install -q --no-deps --no-build-isolation -e . >>"$LOG" 2>&1 \
        || echo "pip install failed: running from src/ on PYTHONPATH" >>"$LOG"
fi
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    "$PY" - <<'PYEOF'
import importlib, sys
print("python", sys.version.split()[0])
for m in ("numpy", "scipy", "numba", "numba_cuda", "torch", "triton", "cupy", "skimage", "pandas", "napari_dynfit"):
    try:
        mod = importlib.import_module(m)
        print(m, getattr(mod, "__version__", "?"))
    except Exception as exc:  # noqa: BLE001
        print(m, "MISSING:", exc)
import torch
print("torch.cuda:", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PYEOF
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

if [ -z "${SKIP_MODELS:-}" ]; then
    echo "== models ($(el) s)"
    timeout "${MODELS_S:-110}" "$PY" -m napari_dynfit.bench.gpu_models_check --device cuda >"$OUT/models.json" 2>>"$LOG"
    echo "models rc=$? ($(el) s)"; cat "$OUT/models.json"
fi

echo "== closure ($(el) s)"
if [ -f "${CLOSURE:-}" ]; then
    timeout "${CLOSURE_S:-190}" "$PY" -m napari_dynfit.bench.closure --cache /tmp/closure-cache --closure "$CLOSURE" \
        --steps stationary --stationary-alpha="${ALPHAS:--2.5,-3.5,-4.5,-6}" \
        --stationary-seeds "${MEMBERS:-99,101-227}" --stationary-batch 1000 --device cuda \
        --out "$OUT/closure.json" >>"$LOG" 2>&1
    echo "closure rc=$? ($(el) s)"
else
    echo "closure skipped: CLOSURE=${CLOSURE:-} is not a file"
fi

echo "== apr ($(el) s)"
timeout "${CHECK_S:-90}" "$PY" -m napari_dynfit.bench.gpu_apr_check >"$OUT/apr_check.json" 2>>"$LOG"
echo "apr check rc=$? ($(el) s)"; tail -n 4 "$OUT/apr_check.json"
left=$(( ${TOTAL_S:-530} - $(el) ))
if [ "$left" -gt 60 ]; then
    timeout "$left" "$PY" -m napari_dynfit.cli bench apr-conv --device cuda --size "${SIZE:-1024}" --ratio 30 \
        --repeat "${REPEAT:-10}" --frames 4 --stencils 4 \
        --sweep "${SWEEP:-256:10,256:100,256:300,512:30,1024:10,1024:300,2048:300}" \
        --budget-s $(( left - 45 )) --overwrite -o "$OUT/gpu_apr_conv.json" >>"$LOG" 2>&1
    echo "apr bench rc=$? ($(el) s)"
else
    echo "apr bench skipped: $left s left"
fi
tail -n 30 "$LOG"
