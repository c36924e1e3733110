# adamw_update (layers/adamw.c) against torch.optim.AdamW on float64 parameters, steps t = 1..3.
import ctypes

import numpy as np
import pytest
import torch
from clib import call, f32, rel_err, t64


def as_f32(x):
    """The hyperparameter as the C kernel sees it, so the float64 reference uses the same value."""
    return float(np.float32(x))


@pytest.mark.parametrize("grad_scale", [1.0, 0.37])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("N", [1, 33, 1000])
def test_adamw(N, weight_decay, grad_scale):
    gen = np.random.default_rng(N)
    lr, beta1, beta2, eps = as_f32(0.05), as_f32(0.9), as_f32(0.95), as_f32(1e-8)
    weight_decay, grad_scale = as_f32(weight_decay), as_f32(grad_scale)
    params0 = f32(N, gen=gen)
    params, m, v = params0.copy(), np.zeros(N, np.float32), np.zeros(N, np.float32)
    p64 = t64(params0, True)
    opt = torch.optim.AdamW([p64], lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)
    for t in (1, 2, 3):
        grads = f32(N, gen=gen)
        call("adamw_update", params, m, v, grads, ctypes.c_size_t(N),
             lr, beta1, beta2, eps, weight_decay, grad_scale, t)
        p64.grad = t64(grads) * grad_scale
        opt.step()
        state = opt.state[p64]
        case = f"N={N} wd={weight_decay} grad_scale={grad_scale} t={t}"
        # Elementwise float32 arithmetic: 1e-5 on the moments, and on the parameter CHANGE (lr 0.05,
        # so the update is well above the float32 rounding of the parameters themselves).
        assert rel_err(m, state["exp_avg"]) < 1e-5, f"adamw m {case}: {rel_err(m, state['exp_avg']):.2e}"
        assert rel_err(v, state["exp_avg_sq"]) < 1e-5, f"adamw v {case}: {rel_err(v, state['exp_avg_sq']):.2e}"
        err = rel_err(params.astype(np.float64) - params0, p64.detach() - t64(params0))
        assert err < 1e-5, f"adamw params {case}: {err:.2e}"
