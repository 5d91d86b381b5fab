// Max pooling on dense channels-last tensors (CPU, float32), forward and backward, for max_pool2d.py.
//
// x is (N, H, W, C) and y is (N, Ho, Wo, C). Window (yo, xo) covers rows yo*sh - top + i (i < kh) and
// columns xo*sw - left + j (j < kw); taps outside the image are the -inf padding, so they never win.
// Forward: y = max over the window's taps (NaN wins, as torch.maximum). Backward: the upstream gradient
// goes to the FIRST tap in row-major window order (i, then j) that equals the maximum (or is NaN): the
// tie rule of max_pool2d.py. No index tensor is kept; backward compares x with y again. Overlapping
// windows (stride < kernel) add their gradients, so images are split between threads, never rows.
// Channels are vectorised VEC at a time (simd.h), the remainder one by one.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "pool_argmax.h"
#include "simd.h"
#include "thread_share.h"

struct PoolGeom {
    int64_t H, W, C, Ho, Wo, kh, kw, sh, sw, top, left;
};

// The window's tap rows [i0, i1) and columns [j0, j1) that lie inside the image.
static inline void window(const PoolGeom& g, int64_t yo, int64_t xo, int64_t& y0, int64_t& i0, int64_t& i1,
                          int64_t& x0, int64_t& j0, int64_t& j1) {
    y0 = yo * g.sh - g.top;
    x0 = xo * g.sw - g.left;
    i0 = std::max<int64_t>(0, -y0);
    i1 = std::min<int64_t>(g.kh, g.H - y0);
    j0 = std::max<int64_t>(0, -x0);
    j1 = std::min<int64_t>(g.kw, g.W - x0);
}

// The window's maximum over channels [c, c + VEC) (NaN wins): its in-image taps, rows x cols of them from p, the
// window's first in-image tap. KH, KW > 0: the window is whole, KH x KW taps, known when compiled.
template <int KH, int KW>
static inline vf window_max(const float* p, int64_t row, int64_t C, int64_t rows, int64_t cols) {
    const float neg_inf = -std::numeric_limits<float>::infinity();
    vf m = vf{} + neg_inf;
    const int64_t ie = KH ? KH : rows, je = KW ? KW : cols;
#pragma GCC unroll 4
    for (int64_t i = 0; i < ie; ++i)
#pragma GCC unroll 4
        for (int64_t j = 0; j < je; ++j) {
            const vf v = load(p + i * row + j * C);
            m = (v > m) | (v != v) ? v : m;  // NaN wins
        }
    return m;
}

// KH, KW > 0: the pool's window size, so that whole windows (all but the padded borders) run unrolled loops.
template <int KH, int KW>
static void pool_forward_image(const float* x, float* y, const PoolGeom& g) {
    const float neg_inf = -std::numeric_limits<float>::infinity();
    const int64_t row = g.W * g.C;
    for (int64_t yo = 0; yo < g.Ho; ++yo)
        for (int64_t xo = 0; xo < g.Wo; ++xo) {
            int64_t y0, i0, i1, x0, j0, j1;
            window(g, yo, xo, y0, i0, i1, x0, j0, j1);
            const bool whole = KH && i0 == 0 && i1 == KH && j0 == 0 && j1 == KW;
            const float* p = x + ((y0 + i0) * g.W + x0 + j0) * g.C;  // the window's first tap in the image
            float* out = y + (yo * g.Wo + xo) * g.C;
            int64_t c = 0;
            for (; c + VEC <= g.C; c += VEC)
                store(out + c, whole ? window_max<KH, KW>(p + c, row, g.C, KH, KW)
                                     : window_max<0, 0>(p + c, row, g.C, i1 - i0, j1 - j0));
            for (; c < g.C; ++c) {
                float m = neg_inf;
                for (int64_t i = i0; i < i1; ++i)
                    for (int64_t j = j0; j < j1; ++j) {
                        const float v = x[((y0 + i) * g.W + x0 + j) * g.C + c];
                        m = (v > m || v != v) ? v : m;
                    }
                out[c] = m;
            }
        }
}

// Windows that never overlap (stride >= kernel, the lecture's 2x2 pools) write each tap once: a store, not an
// add. The zero fill is then needed only where no window reaches (padding, or the last rows / columns 'valid'
// drops), so a pool that tiles the image exactly touches gx once.
static bool disjoint(const PoolGeom& g) { return g.sh >= g.kh && g.sw >= g.kw; }

static bool tiles_image(const PoolGeom& g) {
    return disjoint(g) && g.sh == g.kh && g.sw == g.kw && g.top == 0 && g.left == 0 && g.Ho * g.kh == g.H &&
           g.Wo * g.kw == g.W;
}

// The upstream gradient `grad` of channels [c, c + VEC) to the window's first tap equal to its maximum m (or NaN),
// taps as in window_max; Disjoint: stored (each tap belongs to one window), else added.
template <bool Disjoint, int KH, int KW>
static inline void window_grad(const float* p, float* gp, int64_t row, int64_t C, vf m, vf grad, int64_t rows,
                               int64_t cols) {
    vi done = vi{};
    const int64_t ie = KH ? KH : rows, je = KW ? KW : cols;
#pragma GCC unroll 4
    for (int64_t i = 0; i < ie; ++i)
#pragma GCC unroll 4
        for (int64_t j = 0; j < je; ++j) {
            const int64_t q = i * row + j * C;
            const vf v = load(p + q);
            const vi hit = ((v == m) | (v != v)) & ~done;
            done |= hit;
            const vf add = hit ? grad : vf{};
            store(gp + q, Disjoint ? add : load(gp + q) + add);
        }
}

template <bool Disjoint, int KH, int KW>
static void pool_backward_image(const float* x, const float* y, const float* gy, float* gx, const PoolGeom& g) {
    if (!(Disjoint && tiles_image(g))) std::memset(gx, 0, sizeof(float) * g.H * g.W * g.C);
    const int64_t row = g.W * g.C;
    for (int64_t yo = 0; yo < g.Ho; ++yo)
        for (int64_t xo = 0; xo < g.Wo; ++xo) {
            int64_t y0, i0, i1, x0, j0, j1;
            window(g, yo, xo, y0, i0, i1, x0, j0, j1);
            const bool whole = KH && i0 == 0 && i1 == KH && j0 == 0 && j1 == KW;
            const int64_t first = ((y0 + i0) * g.W + x0 + j0) * g.C;  // the window's first tap in the image
            const int64_t o = (yo * g.Wo + xo) * g.C;
            int64_t c = 0;
            for (; c + VEC <= g.C; c += VEC) {
                const vf m = load(y + o + c), grad = load(gy + o + c);
                if (whole)
                    window_grad<Disjoint, KH, KW>(x + first + c, gx + first + c, row, g.C, m, grad, KH, KW);
                else
                    window_grad<Disjoint, 0, 0>(x + first + c, gx + first + c, row, g.C, m, grad, i1 - i0, j1 - j0);
            }
            for (; c < g.C; ++c) {
                const float m = y[o + c];
                bool done = false;
                for (int64_t i = i0; i < i1; ++i)
                    for (int64_t j = j0; j < j1; ++j) {
                        const int64_t q = ((y0 + i) * g.W + x0 + j) * g.C + c;
                        const bool hit = !done && (x[q] == m || x[q] != x[q]);
                        done |= hit;
                        const float add = hit ? gy[o + c] : 0.0f;
                        gx[q] = Disjoint ? add : gx[q] + add;
                    }
            }
        }
}

extern "C" {

// y (N, Ho, Wo, C) = max pool of x (N, H, W, C); the window geometry as in PoolGeom.
void cnnexp_max_pool(const float* x, float* y, int64_t N, int64_t H, int64_t W, int64_t C, int64_t Ho, int64_t Wo,
                     int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t top, int64_t left, int threads) {
    const PoolGeom g{H, W, C, Ho, Wo, kh, kw, sh, sw, top, left};
    const auto image = kh == 2 && kw == 2 ? pool_forward_image<2, 2> : pool_forward_image<0, 0>;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t n = 0; n < N; ++n) image(x + n * H * W * C, y + n * Ho * Wo * C, g);
}

// gx (N, H, W, C) = the gradient of the max pool for x, its output y and the upstream gradient gy (N, Ho, Wo, C).
void cnnexp_max_pool_backward(const float* x, const float* y, const float* gy, float* gx, int64_t N, int64_t H,
                              int64_t W, int64_t C, int64_t Ho, int64_t Wo, int64_t kh, int64_t kw, int64_t sh,
                              int64_t sw, int64_t top, int64_t left, int threads) {
    const PoolGeom g{H, W, C, Ho, Wo, kh, kw, sh, sw, top, left};
    const bool two = kh == 2 && kw == 2;  // the common 2x2 window runs unrolled
    const auto image = disjoint(g) ? (two ? pool_backward_image<true, 2, 2> : pool_backward_image<true, 0, 0>)
                                   : (two ? pool_backward_image<false, 2, 2> : pool_backward_image<false, 0, 0>);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t n = 0; n < N; ++n)
        image(x + n * H * W * C, y + n * Ho * Wo * C, gy + n * Ho * Wo * C, gx + n * H * W * C, g);
}

// y (N, H/ph, W/pw, C) and idx (its arg-max bytes, pool_argmax.h) = the ph x pw max pool of x (N, H, W, C) with
// windows that tile it ('valid', stride = pool size; the last H % ph rows and W % pw columns are dropped);
// relu != 0: then ReLU'd (pool_argmax_row).
void cnnexp_max_pool_argmax(const float* x, float* y, uint8_t* idx, int64_t N, int64_t H, int64_t W, int64_t C,
                            int ph, int pw, int relu, int threads) {
    const int64_t hp = H / ph, wp = W / pw;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t s = 0; s < N * hp; ++s)
        pool_argmax_row_any(x + ((s / hp) * H + (s % hp) * ph) * W * C, W * C, C, wp, ph, pw, y + s * wp * C,
                            idx + s * wp * C, relu != 0);
}

// gx (N, H, W, C) = the gradient of that pool: gy (N, H/ph, W/pw, C) on the taps idx names, zero elsewhere
// (the dropped rows and columns included).
void cnnexp_max_pool_scatter(const float* gy, const uint8_t* idx, float* gx, int64_t N, int64_t H, int64_t W,
                             int64_t C, int ph, int pw, int threads) {
    const PooledGrad pooled{gy, idx, ph, pw};
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t n = 0; n < N; ++n) pooled.lines(H, W, C, n * H, (n + 1) * H, gx + n * H * W * C);
}

// out (C,) = the bias gradient of a conv + max pool + ReLU (conv_pool.py): the sum over the rows of gy (rows, C)
// dense of the values whose arg-max byte in idx (the same shape) is not CLIPPED (ReLU gave them no gradient).
// Each thread sums blocks of BLOCK rows in float vectors and adds the blocks up in double; then the threads' sums
// in order.
void cnnexp_pooled_bias_grad(const float* gy, const uint8_t* idx, int64_t rows, int64_t C, float* out, int threads) {
    constexpr int64_t BLOCK = 64;
    const int nthreads = rows * C >= (1 << 16) ? threads : 1;
    std::vector<double> partial((size_t)nthreads * C, 0.0);
#pragma omp parallel num_threads(nthreads)
    {
        const ThreadShare share = thread_share(rows);
        double* acc = partial.data() + (size_t)share.id * C;
        const int64_t r1 = share.end;
        for (int64_t b0 = share.begin; b0 < r1; b0 += BLOCK) {
            const int64_t b1 = std::min(r1, b0 + BLOCK);
            int64_t c = 0;
            for (; c + VEC <= C; c += VEC) {
                vf sum{};
                for (int64_t r = b0; r < b1; ++r)
                    sum += load_bytes(idx + r * C + c) != CLIPPED ? load(gy + r * C + c) : vf{};
                for (int v = 0; v < VEC; ++v) acc[c + v] += sum[v];
            }
            for (; c < C; ++c) {
                float sum = 0.0f;
                for (int64_t r = b0; r < b1; ++r) sum += idx[r * C + c] != CLIPPED ? gy[r * C + c] : 0.0f;
                acc[c] += sum;
            }
        }
    }
    for (int64_t c = 0; c < C; ++c) {
        double sum = 0.0;
        for (int k = 0; k < nthreads; ++k) sum += partial[(size_t)k * C + c];
        out[c] = (float)sum;
    }
}

}  // extern "C"
