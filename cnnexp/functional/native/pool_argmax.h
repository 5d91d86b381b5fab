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
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

// VEC one-byte arg-max indices to and from int32 lanes. GCC's __builtin_convertvector between byte and int vectors
// goes lane by lane through scalar registers, so x86 takes the widening and narrowing moves (vpmovzxbd, vpmovdb).
static inline vi load_bytes(const uint8_t* p) {
#if defined(__AVX512F__)
    return (vi)_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
#elif defined(__AVX2__)
    return (vi)_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
#else
    vi v;
    for (int k = 0; k < VEC; ++k) v[k] = p[k];
    return v;
#endif
}

static inline void store_bytes(uint8_t* p, const vi& v) {
#if defined(__AVX512F__)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8((__m512i)v));
#else
    for (int k = 0; k < VEC; ++k) p[k] = (uint8_t)v[k];
#endif
}

// The arg-max byte of a window whose ReLU'd maximum is clipped to zero: no tap's index (a window has at most
// 255 taps), so the scatter sends it no gradient, as ReLU's backward gives none where its input is <= 0.
constexpr uint8_t CLIPPED = 255;

// One pooled row: out[xp, c] = max of the ph x pw window at columns [xp*pw, xp*pw + pw) of the ph input rows,
// idx[xp, c] = its arg-max. in: the first row (pixels of C floats, `row` floats between rows); xp < Wp.
// PH, PW > 0: the window's size known when compiled (the common 2x2 runs unrolled), else ph, pw. relu: the
// maximum then goes through ReLU, max(m, 0) with NaN kept, and a maximum <= 0 gets the byte CLIPPED.
template <int PH = 0, int PW = 0>
static inline void pool_argmax_row(const float* in, int64_t row, int64_t C, int64_t Wp, int ph, int pw, float* out,
                                   uint8_t* idx, bool relu) {
    if (PH) ph = PH;
    if (PW) pw = PW;
    for (int64_t xp = 0; xp < Wp; ++xp) {
        const float* p = in + xp * pw * C;
        float* o = out + xp * C;
        uint8_t* k = idx + xp * C;
        int64_t c = 0;
        for (; c + VEC <= C; c += VEC) {
            vf m = load(p + c);
            vi best = vi{};
#pragma GCC unroll 4
            for (int i = 0; i < ph; ++i)
#pragma GCC unroll 4
                for (int j = 0; j < pw; ++j) {
                    const vf v = load(p + i * row + j * C + c);
                    const vi take = (v > m) | ((v != v) & (m == m));  // larger, or the first NaN
                    m = take ? v : m;
                    best = take ? vi{} + (i * pw + j) : best;
                }
            if (relu) {
                const vi clipped = m <= vf{};
                m = clipped ? vf{} : m;
                best = clipped ? vi{} + CLIPPED : best;
            }
            store(o + c, m);
            store_bytes(k + c, best);
        }
        for (; c < C; ++c) {
            float m = p[c];
            int best = 0;
            for (int i = 0; i < ph; ++i)
                for (int j = 0; j < pw; ++j) {
                    const float v = p[i * row + j * C + c];
                    if (v > m || (v != v && m == m)) m = v, best = i * pw + j;
                }
            if (relu && m <= 0.0f) m = 0.0f, best = CLIPPED;
            o[c] = m;
            k[c] = (uint8_t)best;
        }
    }
}

// Line i of the gradient of one pooled row: the Wp*pw pixels (C floats each) of the window row i get g[xp, c]
// where idx[xp, c] names a tap of that row (i*pw + j) and zero elsewhere. PW > 0: pw known when compiled.
template <int PW = 0>
static inline void pool_scatter_line(const float* g, const uint8_t* idx, int64_t C, int64_t Wp, int i, int pw,
                                     float* out) {
    if (PW) pw = PW;
    for (int64_t xp = 0; xp < Wp; ++xp) {
        const float* gp = g + xp * C;
        const uint8_t* k = idx + xp * C;
        float* q = out + xp * pw * C;
        int64_t c = 0;
        for (; c + VEC <= C; c += VEC) {
            const vf grad = load(gp + c);
            const vi best = load_bytes(k + c);
#pragma GCC unroll 4
            for (int j = 0; j < pw; ++j) store(q + j * C + c, best == i * pw + j ? grad : vf{});
        }
        for (; c < C; ++c)
            for (int j = 0; j < pw; ++j) q[j * C + c] = k[c] == i * pw + j ? gp[c] : 0.0f;
    }
}

// pool_argmax_row / pool_scatter_line unrolled for 2x2 windows, else as given.
static inline void pool_argmax_row_any(const float* in, int64_t row, int64_t C, int64_t Wp, int ph, int pw,
                                       float* out, uint8_t* idx, bool relu) {
    if (ph == 2 && pw == 2) pool_argmax_row<2, 2>(in, row, C, Wp, ph, pw, out, idx, relu);
    else pool_argmax_row(in, row, C, Wp, ph, pw, out, idx, relu);
}

static inline void pool_scatter_line_any(const float* g, const uint8_t* idx, int64_t C, int64_t Wp, int i, int pw,
                                         float* out) {
    if (pw == 2) pool_scatter_line<2>(g, idx, C, Wp, i, pw, out);
    else pool_scatter_line(g, idx, C, Wp, i, pw, out);
}

// The upstream gradient of a conv followed by a ph x pw max pool that tiles its (Ho, Wo) output, as the pool left
// it: the pooled gradient gy (N, Ho/ph, Wo/pw, C) dense and its arg-max taps idx (the same shape, bytes). `lines`
// writes the conv's dense gradient lines [s0, s1) (s = n*Ho + y; Wo pixels of C floats each, one after the
// other): gy on the taps idx names, zero elsewhere and on the rows and columns the 'valid' pool dropped. The
// pool's own gradient (max_pool.cpp) is every line of it; the weight gradient (grid_conv.cpp) expands a few lines
// at a time into a buffer that stays in cache, and the input gradient's grid (grid_layout.cpp) is written from it
// directly, so there the full-size gradient is never stored.
struct PooledGrad {
    const float* gy;
    const uint8_t* idx;
    int ph, pw;

    void lines(int64_t ho, int64_t wo, int64_t C, int64_t s0, int64_t s1, float* out) const {
        const int64_t hp = ho / ph, wp = wo / pw;
        for (int64_t s = s0; s < s1; ++s, out += wo * C) {
            const int64_t n = s / ho, y = s % ho;
            if (y >= hp * ph) {
                std::memset(out, 0, wo * C * sizeof(float));
                continue;
            }
            const int64_t at = (n * hp + y / ph) * wp * C;
            pool_scatter_line_any(gy + at, idx + at, C, wp, (int)(y % ph), pw, out);
            std::memset(out + wp * pw * C, 0, (wo - wp * pw) * C * sizeof(float));
        }
    }
};
