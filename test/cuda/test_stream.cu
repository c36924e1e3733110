// Streaming decoding (gpt_stream_decode; docs/STREAMING.md) through the CUDA kernel set: the gathered
// cache rows (the kernel table's copy), RoPE by cache index and the attention over Tk = cache length.
// - every build: one-layer models, where a cached token's q, k, v depend on the token alone, so the
//   stream's logits at each step equal a fresh CUDA forward over the tokens the cache holds;
// - FP32 build: two-layer models (and mLSTM past maxT), the CUDA stream against the CPU stream.
#include <cmath>
#include <vector>

#include "test/cuda/harness.cuh"

extern "C" {
#include "model/gpt.h"
}

static const int STREAM_STEPS = 80;   // past maxT = 32: every window's ring wraps several times

static std::vector<int> stream_tokens(int V) {
    std::vector<int> tokens(STREAM_STEPS);
    for (int t = 0; t < STREAM_STEPS; t++) tokens[t] = (t * 7919 + 104729) % V;
    return tokens;
}

static std::vector<float> logits_of(const float* logits, int V) { return std::vector<float>(logits, logits + V); }

// The tokens the cache holds after token t: the first `sinks`, then the last `window` of the rest.
static std::vector<int> cached_tokens(const std::vector<int>& tokens, int t, int sinks, int window) {
    std::vector<int> seen(tokens.begin(), tokens.begin() + t + 1);
    if ((int)seen.size() <= sinks + window) return seen;
    std::vector<int> kept(seen.begin(), seen.begin() + sinks);
    kept.insert(kept.end(), seen.end() - window, seen.end());
    return kept;
}

static int stream_vs_forward(const char* descriptor, int sinks, int window) {
    GPTConfig c = gpt_config_from_descriptor(descriptor);
    GPT m;
    gpt_build(&m, &c, cuda_kernel_set());
    gpt_init_random(&m, 7, INIT_SCHEME_GPT2);
    std::vector<int> tokens = stream_tokens(c.vocab_size);
    std::vector<std::vector<float>> streamed;
    gpt_stream_begin(&m, sinks, window);
    for (int t = 0; t < STREAM_STEPS; t++) streamed.push_back(logits_of(gpt_stream_decode(&m, tokens[t]), c.vocab_size));
    double worst = 0.0;
    std::vector<float> full(c.padded_vocab_size);
    for (int t = 0; t < STREAM_STEPS; t++) {
        std::vector<int> cache = cached_tokens(tokens, t, sinks, window);
        gpt_forward(&m, cache.data(), NULL, 1, (int)cache.size());
        gpt_get_logits(&m, cache.size() - 1, full.data());
        double err = rel_err(streamed[t], logits_of(full.data(), c.vocab_size));
        worst = err > worst || std::isnan(err) ? err : worst;
    }
    gpt_free(&m);
    return check(fmt("stream %s S=%d W=%d vs a forward over the cached tokens", descriptor, sinks, window).c_str(),
                 worst, TOL_REDUCTION);
}

#ifndef ATTNLAB_BF16
static int stream_cuda_vs_cpu(const char* descriptor, int sinks, int window) {
    GPTConfig c = gpt_config_from_descriptor(descriptor);
    GPT cpu, gpu;
    gpt_build(&cpu, &c, cpu_kernel_set());
    gpt_build(&gpu, &c, cuda_kernel_set());
    gpt_init_random(&cpu, 7, INIT_SCHEME_GPT2);
    gpt_init_random(&gpu, 7, INIT_SCHEME_GPT2);
    std::vector<int> tokens = stream_tokens(c.vocab_size);
    gpt_stream_begin(&cpu, sinks, window);
    gpt_stream_begin(&gpu, sinks, window);
    double worst = 0.0;
    for (int t = 0; t < STREAM_STEPS; t++) {
        std::vector<float> ref = logits_of(gpt_stream_decode(&cpu, tokens[t]), c.vocab_size);
        double err = rel_err(logits_of(gpt_stream_decode(&gpu, tokens[t]), c.vocab_size), ref);
        worst = err > worst || std::isnan(err) ? err : worst;
    }
    gpt_free(&cpu);
    gpt_free(&gpu);
    return check(fmt("stream %s S=%d W=%d CUDA vs CPU", descriptor, sinks, window).c_str(), worst, TOL_REDUCTION);
}
#endif

int test_stream(void) {
    static const char* one_layer[] = {
        "L=1,C=64,H=4,T=32,V=97,rope=1",
        "L=1,C=64,H=4,T=32,V=97,rope=1,qknorm=1,sink=kv",
        "L=1,C=64,H=4,T=32,V=97,alibi=1,sink=logit",
        "L=1,C=64,H=4,T=32,V=97,mixer=sigmoid,rope=1",
        "L=1,C=64,H=4,T=32,V=97,mixer=sigmoid,norm=1,bias=0,alibi=1",
        "L=1,C=64,H=4,T=32,V=97,sink=k,gate=elem,rope=1,ln=rms,linbias=0,tie=0,gelu=erf",
    };
    int fails = 0;
    for (const char* d : one_layer) {
        fails += stream_vs_forward(d, 4, 12);
        fails += stream_vs_forward(d, 0, 32);
    }
    fails += stream_vs_forward("L=1,C=64,H=4,T=32,V=97,sink=one,rope=1", 1, 7);
#ifndef ATTNLAB_BF16
    fails += stream_cuda_vs_cpu("L=2,C=64,H=4,T=32,V=97,rope=1,ln=rms,linbias=0,tie=0,gelu=erf", 4, 20);
    fails += stream_cuda_vs_cpu("L=2,C=64,H=4,T=32,V=97,alibi=1,mixer=sigmoid,bias=-2", 1, 9);
    fails += stream_cuda_vs_cpu("L=2,C=64,H=4,T=32,V=97,rope=1,sink=k", 0, 16);
    fails += stream_cuda_vs_cpu("L=2,C=64,H=4,T=32,V=97,mixer=mlstm,gate=elem", 0, 32);
#endif
    return fails;
}
