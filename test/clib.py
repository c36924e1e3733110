"""The C library (build/libattnlab.so) from Python, for tests against PyTorch float64.

call("layernorm_forward", out, mean, rstd, x, w, b, N, C) converts its arguments:
numpy arrays -> pointers (must be C-contiguous float32 or int32), Python int -> int,
Python float -> float, None -> NULL; ctypes objects (c_size_t(n), c_double(x)) pass as they are.
"""
import ctypes
import os

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# ATTNLAB_LIB: another build of the library, e.g. the sanitizer build (scripts/check/sanitizer_run.sh)
LIB = ctypes.CDLL(os.environ.get("ATTNLAB_LIB", os.path.join(ROOT, "build", "libattnlab.so")))


def _arg(a):
    if a is None:
        return None
    if isinstance(a, np.ndarray):
        assert a.flags["C_CONTIGUOUS"] and a.dtype in (np.float32, np.int32), a.dtype
        return ctypes.c_void_p(a.ctypes.data)
    if isinstance(a, bool):
        return ctypes.c_int(int(a))
    if isinstance(a, int):
        return ctypes.c_int(a)
    if isinstance(a, float):
        return ctypes.c_float(a)
    return a


def call(name, *args, restype=None):
    fn = getattr(LIB, name)
    fn.restype = restype
    return fn(*[_arg(a) for a in args])


def f32(*shape, scale=1.0, gen=None):
    """Random float32 array N(0, scale^2), never all zeros."""
    gen = gen or np.random.default_rng(0)
    return (gen.standard_normal(shape) * scale).astype(np.float32)


def zeros(*shape):
    return np.zeros(shape, dtype=np.float32)


def poison(*shape):
    """A float32 output buffer filled with NaN, so an element the kernel forgets to write fails the test."""
    return np.full(shape, np.nan, dtype=np.float32)


def t64(a, grad=False):
    """numpy -> torch float64 (optionally requiring grad)."""
    t = torch.from_numpy(np.asarray(a, dtype=np.float64).copy())
    return t.requires_grad_(grad)


def rel_err(got, ref):
    """max |got - ref| / max |ref|: the bound every test states. NaN anywhere gives inf."""
    got = np.asarray(got, dtype=np.float64)
    ref = ref.detach().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"shape {got.shape} != {ref.shape}"
    if not np.all(np.isfinite(got)):
        return float("inf")
    scale = max(np.max(np.abs(ref)), 1e-30)
    return float(np.max(np.abs(got - ref)) / scale)
