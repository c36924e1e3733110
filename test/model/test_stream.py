"""Streaming decoding (StreamingLLM; docs/STREAMING.md): gpt_stream_decode, whose KV cache keeps the
first S and the last W tokens with positions taken within the cache, against
- a fresh forward over the cached tokens, C and PyTorch, in one-layer models: there a token's cached
  q, k, v rows depend on the token alone, so streaming and recomputing the cache are the same model;
- the PyTorch reference's own streaming cache (scripts/ref/ref_gpt2.py StreamCache) in two-layer models,
  where the deeper layers' cached rows keep the context they were computed in (as in StreamingLLM),
  for every mixer that streams, mLSTM's recurrent state past maxT included."""
import ctypes

import numpy as np
import pytest
import torch

from clib import LIB, rel_err
from test_gpt import CModel

import ref_gpt2

ONE_LAYER = dict(maxT=24, V=67, Vp=128, L=1, H=4, C=32)
PAPER = dict(ln="rms", linbias=0, tie=0, gelu="erf", rope=1)
# every score map and position scheme that streams, and the sink slots
STREAMERS = {
    "softmax+rope": dict(rope=1),
    "softmax+rope+qknorm": dict(rope=1, qknorm=1),
    "sigmoid+rope": dict(mixer="sigmoid", bias=-2.0, rope=1),
    "sigmoid b=0+alibi": dict(mixer="sigmoid", bias=0.0, alibi=1),
    "sigmoid normalized+alibi": dict(mixer="sigmoid", bias=0.0, norm=1, alibi=1),
    "sigmoid normalized+rope": dict(mixer="sigmoid", bias=0.0, norm=1, rope=1),
    "softmax+alibi": dict(alibi=1),
    "softmax+sink k+rope": dict(sink="k", rope=1),
    "softmax+sink kv+rope+qknorm": dict(sink="kv", rope=1, qknorm=1),
    "softmax+sink logit+alibi": dict(sink="logit", alibi=1),
    "softmax+sink one+rope": dict(sink="one", rope=1),
    "softmax+gate elem+rope": dict(gate="elem", rope=1),
    "sigmoid+gate head+alibi": dict(mixer="sigmoid", bias=-1.0, gate="head", alibi=1),
    "paper block softmax": PAPER,
}
# (S, W): sinks and window, S + W <= maxT; 40 tokens wrap each window's ring several times
SIZES = [(2, 5), (0, 7), (1, 12), (4, 20)]
STEPS = 40


def write_model(tmp_path, cfg, seed=3):
    path = str(tmp_path / "model.bin")
    params = ref_gpt2.random_params(cfg, seed=seed, scale=0.3)
    if cfg.get("mixer") == "mlstm":   # forget gates open, as the recommended init (docs/MODEL.md 3)
        params["mlstm_gateb"][:, cfg["H"]:] += 4.0
    ref_gpt2.write_checkpoint(path, cfg, params)
    return path


def stream_logits_c(cm, tokens, sinks, window, Vp):
    out = np.zeros((len(tokens), Vp), dtype=np.float32)
    LIB.capi_stream_begin(cm.h, sinks, window)
    for t, tok in enumerate(tokens):
        LIB.capi_stream_decode(cm.h, int(tok), ctypes.c_void_p(out[t].ctypes.data))
    return out


def cached_tokens(tokens, t, sinks, window):
    """The tokens the cache holds after token t: the first `sinks`, then the last `window` of the rest."""
    seen = list(tokens[:t + 1])
    return seen if len(seen) <= sinks + window else seen[:sinks] + seen[-window:]


@pytest.mark.parametrize("sinks,window", SIZES)
@pytest.mark.parametrize("name", STREAMERS)
def test_one_layer_stream_equals_a_forward_over_the_cached_tokens(tmp_path, name, sinks, window):
    cfg = dict(ONE_LAYER, **STREAMERS[name])
    path = write_model(tmp_path, cfg)
    cm, V, Vp = CModel(path), cfg["V"], cfg["Vp"]
    tokens = np.random.default_rng(5).integers(0, V, STEPS).astype(np.int32)
    streamed = stream_logits_c(cm, tokens, sinks, window, Vp)
    rcfg, params, _ = ref_gpt2.read_checkpoint(path)
    ref = ref_gpt2.GPT2(rcfg, params)
    for t in range(STEPS):
        cache = np.array(cached_tokens(tokens, t, sinks, window), dtype=np.int32)
        full = np.zeros((len(cache), Vp), dtype=np.float32)
        LIB.capi_forward_logits(cm.h, ctypes.c_void_p(cache.ctypes.data), 1, len(cache),
                                ctypes.c_void_p(full.ctypes.data))
        err = rel_err(streamed[t, :V], full[-1, :V])
        assert err < 1e-5, f"{name} S={sinks} W={window} token {t}: stream vs C forward over the cache: {err:.2e}"
        with torch.no_grad():
            ref_logits = ref(torch.from_numpy(cache).long()[None])[0][0, -1, :V]
        err = rel_err(streamed[t, :V], ref_logits)
        assert err < 1e-5, f"{name} S={sinks} W={window} token {t}: stream vs PyTorch over the cache: {err:.2e}"


TWO_LAYERS = dict(maxT=24, V=67, Vp=128, L=2, H=4, C=32)
DEEP = dict(STREAMERS, **{
    "rms+sink kv+qknorm+hybrid+layerscale+rope": dict(ln="rms", sink="kv", qknorm=1, hybrid=1, layerscale=1, rope=1),
    "paper block swiglu": dict(ln="rms", linbias=0, tie=0, mlp="swiglu", rope=1),
    "mlstm exp chunk 4": dict(mixer="mlstm", gate="elem", igate="exp", chunk=4),
    "paper block mlstm sig": dict(ln="rms", linbias=0, tie=0, gelu="erf", mixer="mlstm", gate="elem", igate="sig"),
})


@pytest.mark.parametrize("name", DEEP)
def test_two_layer_stream_matches_the_reference_stream(tmp_path, name):
    cfg = dict(TWO_LAYERS, **DEEP[name])
    path = write_model(tmp_path, cfg)
    cm, V, Vp = CModel(path), cfg["V"], cfg["Vp"]
    rcfg, params, _ = ref_gpt2.read_checkpoint(path)
    ref = ref_gpt2.GPT2(rcfg, params)
    # the same handle streams twice: gpt_stream_begin starts afresh (and regrows the cache rows)
    for seed, (sinks, window) in [(5, (2, 5)), (6, (3, 21))]:
        tokens = np.random.default_rng(seed).integers(0, V, STEPS).astype(np.int32)   # past maxT = 24
        streamed = stream_logits_c(cm, tokens, sinks, window, Vp)
        with torch.no_grad():
            ref_logits = ref_gpt2.stream_logits(ref, tokens, sinks, window)
        for t in range(STEPS):
            err = rel_err(streamed[t, :V], ref_logits[t, :V])
            assert err < 1e-4, f"{name} S={sinks} W={window} token {t}: stream vs the reference stream: {err:.2e}"


def test_reference_stream_is_the_plain_forward_until_the_cache_is_full(tmp_path):
    """The reference's StreamCache evicts nothing until S + W tokens: then it is plain causal decoding."""
    cfg = dict(TWO_LAYERS, rope=1, sink="kv")
    rcfg, params, _ = ref_gpt2.read_checkpoint(write_model(tmp_path, cfg))
    ref = ref_gpt2.GPT2(rcfg, params)
    tokens = np.random.default_rng(1).integers(0, cfg["V"], 20)
    with torch.no_grad():
        full = ref(torch.from_numpy(tokens).long()[None])[0][0]
        streamed = ref_gpt2.stream_logits(ref, tokens, 4, 16)
        evicting = ref_gpt2.stream_logits(ref, tokens, 4, 10)
    assert rel_err(streamed, full) < 1e-12
    assert rel_err(evicting[:14], full[:14]) < 1e-12
    assert rel_err(evicting[14:], full[14:]) > 1e-3, "evicting tokens changed nothing: the reference cache is not used"


LIB.capi_stream_why.restype = ctypes.c_char_p


@pytest.mark.parametrize("sinks,window", [(-1, 5), (0, 0), (20, 5), (0, 25)])
def test_bad_sizes_are_refused(sinks, window):
    for descriptor in ["L=1,C=32,H=4,T=24,V=67,rope=1", "L=1,C=32,H=4,T=24,V=67,mixer=mlstm"]:
        cm = CModel(descriptor=descriptor)
        why = LIB.capi_stream_why(cm.h, sinks, window)
        assert why and b"S + W at most the model's maxT" in why, f"{descriptor} S={sinks} W={window}: {why}"


def test_learned_positions_refuse_to_stream_and_mlstm_streams():
    wpe, mlstm = CModel(descriptor="L=1,C=32,H=4,T=24,V=67"), CModel(descriptor="L=1,C=32,H=4,T=24,V=67,mixer=mlstm")
    why = LIB.capi_stream_why(wpe.h, 2, 5)
    assert why and b"learned absolute positions" in why and b"rope=1 or alibi=1" in why, why
    why = LIB.capi_stream_why(mlstm.h, 2, 5)
    assert why is None, f"mlstm streams with its recurrent state, but: {why}"
