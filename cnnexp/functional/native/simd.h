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

// Whole vectors move through a may_alias view of the floats, not memcpy: with Intel tunings (-march=icelake-server,
// rocketlake, ...) GCC expands a 64-byte memcpy into two 256-bit moves through a stack slot, inside the kernels'
// inner loops (scripts/tile_mca.py counts such stack traffic per register tile).
typedef float vf_view __attribute__((vector_size(VEC * sizeof(float)), aligned(sizeof(float)), may_alias));

static inline vf load(const float* p) { return *reinterpret_cast<const vf_view*>(p); }

static inline void store(float* p, const vf& v, int64_t n = VEC) {  // the first n lanes (all when n >= VEC)
    if (n >= VEC)
        *reinterpret_cast<vf_view*>(p) = v;
    else
        std::memcpy(p, &v, n * sizeof(float));
}
