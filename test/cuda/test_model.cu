// The whole model, CUDA against CPU, in the FP32 build (where both kernel sets share floatX = float
// and so one model graph object): the same random GPT-2 on each set, the loss and every parameter
// gradient of one batch, then 10 AdamW steps. In the bf16 build the CPU table cannot be linked
// beside the CUDA one; scripts/gpu_check.sh compares that build with the CPU trainer (-dg dumps).
#include <cmath>
#include <vector>

#include "test/cuda/harness.cuh"

extern "C" {
#include "model/gpt.h"
}

#ifdef ATTNLAB_BF16
int test_model(void) {
    printf("skip whole model CUDA vs CPU: bf16 build (scripts/gpu_check.sh compares it with the CPU trainer)\n");
    return 0;
}
#else
// decay_all: weight decay on every parameter (-ca 1), as the sink paper's block trains.
static int compare_model(const char* descriptor, int B, int T, int decay_all = 0) {
    GPTConfig c = gpt_config_from_descriptor(descriptor);
    GPT cpu, gpu;
    gpt_build(&cpu, &c, cpu_kernel_set());
    gpt_build(&gpu, &c, cuda_kernel_set());
    gpt_init_random(&cpu, 7, INIT_SCHEME_GPT2);
    gpt_init_random(&gpu, 7, INIT_SCHEME_GPT2);
    std::vector<int> inputs(B * T), targets(B * T);
    int fails = 0;
    std::vector<float> g_cpu(cpu.num_parameters), g_gpu(gpu.num_parameters);
    for (int step = 1; step <= 11; step++) {
        for (int i = 0; i < B * T; i++) {
            inputs[i] = (i * 7919 + step * 104729) % c.vocab_size;
            targets[i] = (i * 6007 + step * 7) % c.vocab_size;
        }
        gpt_zero_grad(&cpu);
        gpt_zero_grad(&gpu);
        float loss_cpu = gpt_forward(&cpu, inputs.data(), targets.data(), B, T);
        float loss_gpu = gpt_forward(&gpu, inputs.data(), targets.data(), B, T);
        char what[160];
        snprintf(what, sizeof(what), "model %s B=%d T=%d step %d loss", descriptor, B, T, step);
        fails += check(what, fabs(loss_gpu - loss_cpu) / fabs(loss_cpu), TOL_REDUCTION);
        gpt_backward(&cpu, 1.0f / (B * T));
        gpt_backward(&gpu, 1.0f / (B * T));
        if (step == 1) {   // every parameter gradient, once; then the training steps
            gpt_get_gradients(&cpu, g_cpu.data());
            gpt_get_gradients(&gpu, g_gpu.data());
            snprintf(what, sizeof(what), "model %s B=%d T=%d every gradient", descriptor, B, T);
            fails += check(what, rel_err(g_gpu, g_cpu), TOL_REDUCTION);
        }
        gpt_update(&cpu, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, decay_all, 1.0f, step);
        gpt_update(&gpu, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, decay_all, 1.0f, step);
    }
    gpt_free(&cpu);
    gpt_free(&gpu);
    return fails;
}

int test_model(void) {
    int fails = compare_model("L=2,C=64,H=4,T=64,V=257", 2, 37);          // odd T, fallback attention
    fails += compare_model("L=2,C=256,H=4,T=128,V=1000", 4, 128);        // hs 64
    fails += compare_model("L=1,C=256,H=2,T=128,V=300,mixer=sigmoid", 2, 100);
    // the sink paper's block (RMSNorm, no linear biases, untied head, erf GELU, RoPE), and with SwiGLU
    fails += compare_model("L=2,C=64,H=4,T=64,V=257,ln=rms,linbias=0,tie=0,gelu=erf,rope=1", 2, 37, 1);
    fails += compare_model("L=2,C=64,H=4,T=64,V=257,ln=rms,linbias=0,tie=0,mlp=swiglu,rope=1", 2, 37, 1);
    return fails;
}
#endif
