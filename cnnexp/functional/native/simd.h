// The SIMD vocabulary of cnnexp's kernels: VEC floats a vector (GCC vector extensions; -march=native picks
// AVX-512, 16 floats, or AVX2, 8), unaligned loads and stores.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__)
constexpr int VEC = 16;
#else
constexpr int VEC = 8;
#endif
typedef float vf __attribute__((vector_size(VEC * sizeof(float)), aligned(sizeof(float))));
typedef int32_t vi __attribute__((vector_size(VEC * sizeof(int32_t))));  // lane masks of vf comparisons

static inline vf load(const float* p) {
    vf v;
    std::memcpy(&v, p, sizeof(vf));
    return v;
}

static inline void store(float* p, const vf& v, int64_t n = VEC) {  // the first n lanes (all when n >= VEC)
    std::memcpy(p, &v, (n >= VEC ? VEC : n) * sizeof(float));
}
