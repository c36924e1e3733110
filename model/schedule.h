// The learning-rate schedules of the trainer (train.c).
#pragma once

// Learning rate at step (0-based) of num_steps: linear warmup over `warmup` steps to max_lr, then
// "cosine" or "linear" decay to max_lr * final_frac, "constant", or "wsd" (warmup, stable, then a
// 1-sqrt decay to max_lr * final_frac over the last 20% of the steps).
float learning_rate(const char* schedule, float max_lr, int warmup, int num_steps, float final_frac, int step);
// Fails with one line unless name is one of the schedules above.
void learning_rate_check(const char* schedule);
