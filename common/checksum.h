// A 64-bit checksum of a byte stream, for the files the trainer writes (docs/FORMATS.md): FNV-1a over
// 8-byte words, then the tail bytes. Not cryptographic: it is there to notice a torn, truncated or
// bit-rotten file, and it runs at GB/s, so every checkpoint can be checked when it is read.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CHECKSUM_START 14695981039346656037ull
#define CHECKSUM_PRIME 1099511628211ull

// h after the n bytes at data; feed a stream in pieces whose sizes are multiples of 8 (the last may
// be any size).
static inline uint64_t checksum_update(uint64_t h, const void* data, size_t n) {
    const unsigned char* p = (const unsigned char*)data;
    size_t words = n / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t w;
        memcpy(&w, p + 8 * i, 8);
        h = (h ^ w) * CHECKSUM_PRIME;
    }
    for (size_t i = 8 * words; i < n; i++) h = (h ^ p[i]) * CHECKSUM_PRIME;
    return h;
}

// Two int32 header slots <-> a 64-bit value.
static inline void checksum_to_slots(int* slots, uint64_t h) { memcpy(slots, &h, sizeof(h)); }
static inline uint64_t checksum_from_slots(const int* slots) {
    uint64_t h;
    memcpy(&h, slots, sizeof(h));
    return h;
}
