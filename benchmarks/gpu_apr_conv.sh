#!/usr/bin/env bash
# Issue 18 device check alone, < 5 minutes on one NVIDIA GPU (H100/H200): the APR part of gpu_session.sh
# (the fused tile kernel against our CPU kernel -> apr_check.json; `dynfit bench apr-conv --device cuda` ->
# gpu_apr_conv.json; env.txt, session.log), without the models and closure parts.
#   OUT=/some/dir bash benchmarks/gpu_apr_conv.sh        (default OUT: ./gpu_out)
# Dry run without a GPU (numba's CUDA simulator, tiny sizes, no install):
#   NUMBA_ENABLE_CUDASIM=1 SKIP_INSTALL=1 SIZE=32 SWEEP=32:60 bash benchmarks/gpu_apr_conv.sh
exec env SKIP_MODELS=1 CLOSURE= TOTAL_S="${TOTAL_S:-285}" CHECK_S="${CHECK_S:-150}" bash "$(dirname "$0")/gpu_session.sh"
