#!/usr/bin/env bash
# Issue 18 device run alone, the APR part of gpu_session.sh without the models and closure parts: env.txt, then
# `dynfit bench apr-conv --device cuda --size 1024` -> gpu_apr_conv.json (headline ~1 minute in, the whole bench
# within BENCH_S = 150 s), session.log; the kernel-vs-CPU check (apr_check.json, passed on an H200 on 2026-12-04)
# only with SKIP_APR_CHECK= (empty). About 3 minutes of device time in all (docs/apr_filters.md).
#   OUT=/some/dir bash benchmarks/gpu_apr_conv.sh        (default OUT: ./gpu_out; SKIP_INSTALL=1 by default here:
#   it runs from src/ on PYTHONPATH, as the H200 image's pip could not build the package, no hatchling there)
# Dry run without a GPU (numba's CUDA simulator, tiny sizes, no install):
#   NUMBA_ENABLE_CUDASIM=1 SKIP_INSTALL=1 SIZE=32 SWEEP=32:60 FRAMES=1 STENCILS=1 bash benchmarks/gpu_apr_conv.sh
exec env SKIP_MODELS=1 CLOSURE= SKIP_INSTALL="${SKIP_INSTALL-1}" SKIP_APR_CHECK="${SKIP_APR_CHECK-1}" \
    TOTAL_S="${TOTAL_S:-240}" BENCH_S="${BENCH_S:-150}" CHECK_S="${CHECK_S:-90}" bash "$(dirname "$0")/gpu_session.sh"
