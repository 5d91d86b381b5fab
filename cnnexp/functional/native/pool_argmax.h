// Max pooling with a remembered arg-max, for windows that tile the image (stride == pool size, 'valid', no
// padding): the epilogue of the fused convolution + pool (grid_conv.cpp) and its gradient's scatter
// (max_pool.cpp), both on dense channels-last rows.
//
// The arg-max is the tap's row-major index i*pw + j in its window, one byte per output value: the FIRST tap
// equal to the window's maximum, or the first NaN (NaN wins): the tie rule of max_pool2d.py, so the gradient goes
// where the pool's own backward would send it.
#pragma once
#include <cstdint>
#include <cstring>

#include "simd.h"

typedef uint8_t vb __attribute__((vector_size(VEC)));  // VEC one-byte arg-max indices

// One pooled row: out[xp, c] = max of the ph x pw window at columns [xp*pw, xp*pw + pw) of the ph input rows,
// idx[xp, c] = its arg-max. in: the first row (pixels of C floats, `row` floats between rows); xp < Wp.
static inline void pool_argmax_row(const float* in, int64_t row, int64_t C, int64_t Wp, int ph, int pw, float* out,
                                   uint8_t* idx) {
    for (int64_t xp = 0; xp < Wp; ++xp) {
        const float* p = in + xp * pw * C;
        float* o = out + xp * C;
        uint8_t* k = idx + xp * C;
        int64_t c = 0;
        for (; c + VEC <= C; c += VEC) {
            vf m = load(p + c);
            vi best = vi{};
            for (int i = 0; i < ph; ++i)
                for (int j = 0; j < pw; ++j) {
                    const vf v = load(p + i * row + j * C + c);
                    const vi take = (v > m) | ((v != v) & (m == m));  // larger, or the first NaN
                    m = take ? v : m;
                    best = take ? vi{} + (i * pw + j) : best;
                }
            store(o + c, m);
            const vb bytes = __builtin_convertvector(best, vb);
            std::memcpy(k + c, &bytes, VEC);
        }
        for (; c < C; ++c) {
            float m = p[c];
            int best = 0;
            for (int i = 0; i < ph; ++i)
                for (int j = 0; j < pw; ++j) {
                    const float v = p[i * row + j * C + c];
                    if (v > m || (v != v && m == m)) m = v, best = i * pw + j;
                }
            o[c] = m;
            k[c] = (uint8_t)best;
        }
    }
}

// The gradient of one pooled row: the ph input rows (pixels of C floats, `row` floats apart, Wp*pw pixels each)
// get g[xp, c] on the tap idx[xp, c] of each window and zero on the others.
static inline void pool_scatter_row(const float* g, const uint8_t* idx, int64_t C, int64_t Wp, int ph, int pw,
                                    float* out, int64_t row) {
    for (int64_t xp = 0; xp < Wp; ++xp) {
        const float* gp = g + xp * C;
        const uint8_t* k = idx + xp * C;
        float* q = out + xp * pw * C;
        int64_t c = 0;
        for (; c + VEC <= C; c += VEC) {
            const vf grad = load(gp + c);
            vb bytes;
            std::memcpy(&bytes, k + c, VEC);
            const vi best = __builtin_convertvector(bytes, vi);
            for (int i = 0; i < ph; ++i)
                for (int j = 0; j < pw; ++j) store(q + i * row + j * C + c, best == i * pw + j ? grad : vf{});
        }
        for (; c < C; ++c)
            for (int i = 0; i < ph; ++i)
                for (int j = 0; j < pw; ++j) q[i * row + j * C + c] = k[c] == i * pw + j ? gp[c] : 0.0f;
    }
}
