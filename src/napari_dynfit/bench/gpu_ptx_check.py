"""Compile every GPU kernel (apr/convolve_tile.py, apr/filters_tile.py) to PTX for sm_90 without a GPU.

Catches what the CUDA simulator cannot (numba typing, constant shared-array sizes, unsupported builtins). Needs
NVVM, e.g. ``pip install --target /tmp/nvvm nvidia-cuda-nvcc-cu12`` and
``CUDA_HOME=/tmp/nvvm/nvidia/cuda_nvcc PYTHONPATH=src python -m napari_dynfit.bench.gpu_ptx_check``.
"""


def main() -> None:
    import numba.cuda.dispatcher as _d
    from numba import cuda
    from numba import types as t


    class _Dev:  # no driver here: device functions compile for sm_90 (numba asks the current device)
        compute_capability = (9, 0)
    _d.get_current_device = lambda: _Dev()
    from napari_dynfit.apr import convolve_tile as tile
    from napari_dynfit.apr import filters_tile as ft

    a1 = lambda dt: t.Array(dt, 1, "C")
    a2 = lambda dt: t.Array(dt, 2, "C")
    a3 = lambda dt: t.Array(dt, 3, "C")
    struct = (t.int64, t.int64, t.int64, a2(t.int64), a1(t.int64), a1(t.uint16), a1(t.int64), a1(t.int64), a1(t.uint16), a1(t.int64))
    tree = tile._tree_kernel()
    sig = struct + (a2(t.float32), a2(t.float32), t.int64, t.int64)
    ptx, _ = cuda.compile_ptx(tree.py_func, sig, cc=(9, 0))
    print("tree ok", len(ptx))
    for halo, ns in [((2, 2, 2), 1), ((1, 1, 1), 4), ((0, 3, 3), 2)]:
        k = tile._conv_kernel((8, 8, 32), 256, halo, ns)
        sig = struct + (a2(t.float32), a2(t.float32), a2(t.float32), t.boolean, t.int64, t.int64, a3(t.float32))
        ptx, _ = cuda.compile_ptx(k.py_func, sig, cc=(9, 0))
        print("conv ok", halo, ns, len(ptx), "local" , ptx.count(".local"))
    K = ft._kernels()
    sigs = {
     "magnitude": (a3(t.float32), a2(t.float32)),
     "minmax": (a1(t.float32), a1(t.float32)),
     "histogram": (t.int64, t.int64, t.int64, t.int64, a2(t.int64), a1(t.int64), a1(t.uint16), a1(t.int64), a1(t.int64), a1(t.float32), a1(t.float32), a1(t.float64)),
     "otsu": (a1(t.float64), a1(t.float32), a1(t.float64)),
     "above": (a1(t.float32), a1(t.float64), a1(t.uint8)),
     "union": (t.int64, t.int64, t.int64, t.int64, a2(t.int64), a1(t.int64), a1(t.uint16), a1(t.int64), t.int64, a1(t.uint8), a1(t.int64)),
     "init_parent": (a1(t.int64),),
     "flatten": (a1(t.uint8), a1(t.int64), a1(t.int64)),
    }
    for name, sig in sigs.items():
        ptx, _ = cuda.compile_ptx(K[name].py_func, sig, cc=(9, 0))
        print(name, "ok", len(ptx))


if __name__ == "__main__":
    main()
