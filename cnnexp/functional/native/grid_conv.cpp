// Register-tiled direct convolution on the flattened padded grid of grid_gemm.py (CPU, float32).
//
// The input is a channels-last grid: row q holds C floats, and output pixel (n, y, x) sits at grid row
// p = (n*Hs + y)*Ws + x (Hs >= H_out, Ws >= W_out: the rest of the grid is margin). A stride-1 conv
// reads, for grid row p, the input rows p + off[t] of the kernel taps t; with w laid out (T, C, CoP):
//
//     out[n, y, x, co] = bias[co] + sum_t sum_c in[p + off[t], c] * w[t, c, co]      (forward, and dL/dx)
//     dw[t, c, co]     = sum_(n,y,x) in[p + off[t], c] * g[n, y, x, co]              (dL/dW)
//
// `out` and `g` are dense (N, H_out, W_out, C_out) tensors. CoP is C_out rounded up to the vector width
// VEC (w's padding columns are zero). A tile keeps an R x V block of output vectors in registers (R pixels
// of an image row, V*VEC channels) while it streams the taps and channels: each broadcast input value
// feeds V fused multiply-adds, or 3*V when the taps come in kernel rows of three (input pixel q feeds the
// outputs q, q-1, q-2). Tiles run along one image row (the row's last tile is shorter), so no margin
// position of the grid is computed and no im2col matrix is built. The weight gradient tiles input channels
// x output vectors the same way, summed over pixels per thread and then reduced.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "pool_argmax.h"
#include "simd.h"
#include "thread_share.h"

struct Grid {        // where the pixels are on the grid
    int64_t hs, ws;  // grid rows per image, grid row length
    int64_t ho, wo;  // pixel rows per image, pixels per row
    // grid row of the first pixel of image row s = n*ho + y
    int64_t row(int64_t s) const { return ((s / ho) * hs + s % ho) * ws; }
};

// Pixels [x0, x0+R) of one image row, channels [co, co + V*VEC) (the last vector may be partial: Co).
// in: the grid at the first pixel; out: the dense output at the first pixel. KW > 1: the taps come in
// groups of KW with consecutive offsets (a kernel row, dilation 1), so input row q feeds output rows
// q - j of the group's taps j: one broadcast serves KW*V multiply-adds instead of V.
template <int R, int V, int KW>
static inline void conv_tile(const float* in, int64_t C, const float* w, int64_t CoP, const int64_t* off, int T,
                             const float* bias, float* out, int64_t Co, int64_t co) {
    vf acc[R][V];
    for (int v = 0; v < V; ++v) {
        vf b = {};
        if (bias) {
            float lanes[VEC] = {};
            for (int64_t k = 0; k < VEC && co + v * VEC + k < Co; ++k) lanes[k] = bias[co + v * VEC + k];
            b = load(lanes);
        }
#pragma GCC unroll 32
        for (int r = 0; r < R; ++r) acc[r][v] = b;
    }
    for (int t = 0; t < T; t += KW) {
        const float* x = in + off[t] * C;
        const float* wt = w + (int64_t)t * C * CoP + co;
        for (int64_t c = 0; c < C; ++c) {
            vf wv[KW][V];
#pragma GCC unroll 8
            for (int j = 0; j < KW; ++j)
#pragma GCC unroll 8
                for (int v = 0; v < V; ++v) wv[j][v] = load(wt + (j * C + c) * CoP + v * VEC);
#pragma GCC unroll 40
            for (int q = 0; q < R + KW - 1; ++q) {
                const float xs = x[q * C + c];
#pragma GCC unroll 8
                for (int j = 0; j < KW; ++j)
                    if (q - j >= 0 && q - j < R)
#pragma GCC unroll 8
                        for (int v = 0; v < V; ++v) acc[q - j][v] += xs * wv[j][v];
            }
        }
    }
    for (int r = 0; r < R; ++r)
        for (int v = 0; v < V; ++v) store(out + r * Co + co + v * VEC, acc[r][v], Co - co - v * VEC);
}

// The last r < R pixels of a row: conv_tile<r, V, KW>, picked at run time among 1..R-1.
template <int R, int V, int KW>
static inline void conv_tail(int r, const float* in, int64_t C, const float* w, int64_t CoP, const int64_t* off, int T,
                             const float* bias, float* out, int64_t Co, int64_t co) {
    if constexpr (R > 1) {
        if (r == R - 1) conv_tile<R - 1, V, KW>(in, C, w, CoP, off, T, bias, out, Co, co);
        else conv_tail<R - 1, V, KW>(r, in, C, w, CoP, off, T, bias, out, Co, co);
    }
}

// Pixels [0, width) of one image row, channels [co, co + V*VEC): src, the row's first pixel on the grid; dst, its
// first output pixel (Co floats each). Tiles never cross a row end, so no margin position is computed.
template <int R, int V, int KW>
static inline void conv_row(const float* src, int64_t C, const float* w, int64_t Co, int64_t CoP, const int64_t* off,
                            int T, const float* bias, float* dst, int64_t width, int64_t co) {
    int64_t x = 0;
    for (; x + R <= width; x += R) conv_tile<R, V, KW>(src + x * C, C, w, CoP, off, T, bias, dst + x * Co, Co, co);
    if (x < width) conv_tail<R, V, KW>((int)(width - x), src + x * C, C, w, CoP, off, T, bias, dst + x * Co, Co, co);
}

// Image rows [s0, s1): every pixel, every channel block.
template <int R, int V, int KW>
static void conv_rows(const float* in, int64_t C, const float* w, int64_t Co, int64_t CoP, const int64_t* off, int T,
                      const float* bias, float* out, const Grid& grid, int64_t s0, int64_t s1) {
    for (int64_t co = 0; co < CoP; co += V * VEC)
        for (int64_t s = s0; s < s1; ++s)
            conv_row<R, V, KW>(in + grid.row(s) * C, C, w, Co, CoP, off, T, bias, out + s * grid.wo * Co, grid.wo, co);
}

template <int R, int V, int KW>
static void conv_parallel(const float* in, int64_t C, const float* w, int64_t Co, int64_t CoP, const int64_t* off,
                          int T, const float* bias, float* out, const Grid& grid, int64_t S, int threads) {
    const int64_t unit = std::max<int64_t>(1, 96 / grid.wo);  // ~96 pixels a unit
    const int64_t units = (S + unit - 1) / unit;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t u = 0; u < units; ++u)
        conv_rows<R, V, KW>(in, C, w, Co, CoP, off, T, bias, out, grid, u * unit, std::min(S, (u + 1) * unit));
}

// The convolution followed by a ph x pw max pool that tiles it ('valid', stride = pool size), never storing the
// convolution's output: for each pooled row, its ph image rows (the pixels the pool reads) go to a small buffer
// per thread, and pool_argmax_row writes the pooled row and its arg-max bytes (N, Ho/ph, Wo/pw, Co) from there.
template <int R, int V, int KW>
static void conv_pool_parallel(const float* in, int64_t C, const float* w, int64_t Co, int64_t CoP,
                               const int64_t* off, int T, const float* bias, float* out, uint8_t* idx,
                               const Grid& grid, int64_t N, int ph, int pw, bool relu, int threads) {
    const int64_t hp = grid.ho / ph, wp = grid.wo / pw, width = wp * pw;
#pragma omp parallel num_threads(threads)
    {
        std::vector<float> rows((size_t)ph * width * Co);
#pragma omp for schedule(static)
        for (int64_t s = 0; s < N * hp; ++s) {
            const int64_t first = (s / hp) * grid.ho + (s % hp) * ph;  // the first image row (n*H_out + y) it pools
            for (int64_t co = 0; co < CoP; co += V * VEC)
                for (int i = 0; i < ph; ++i)
                    conv_row<R, V, KW>(in + grid.row(first + i) * C, C, w, Co, CoP, off, T, bias,
                                       rows.data() + i * width * Co, width, co);
            pool_argmax_row_any(rows.data(), width * Co, Co, wp, ph, pw, out + s * wp * Co, idx + s * wp * Co, relu);
        }
    }
}

// Do the taps come in kernel rows of 3 consecutive offsets (a 3-wide kernel, dilation 1)?
static bool rows_of_three(const int64_t* off, int T) {
    if (T % 3) return false;
    for (int t = 0; t < T; t += 3)
        if (off[t + 1] != off[t] + 1 || off[t + 2] != off[t] + 2) return false;
    return true;
}

// Image rows (about 256 pixels) a weight-gradient pass keeps in cache at a time.
static int64_t dw_chunk(const Grid& grid) { return std::max<int64_t>(1, 256 / grid.wo); }

// dw[t + j, c0..c0+RC, co..co+V*VEC) += sum over the pixels of image rows [s0, s1) (s = n*H_out + y; g points
// at row s0's gradient), for the KW taps t..t+KW-1 of a kernel row (consecutive offsets when KW > 1). Written
// over input columns u = x + j: input pixel u meets g[u - j] for tap j, so a window of the last KW gradient
// vectors slides along the row and one broadcast input value feeds KW*V multiply-adds.
template <int RC, int V, int KW>
static inline void dw_tile_row(const float* in, int64_t C, const float* g, int64_t CoP, int64_t t_off, int64_t c0,
                               int64_t co, const Grid& grid, int64_t s0, int64_t s1, float* dw_t) {
    vf acc[KW][RC][V] = {};
    for (int64_t s = s0; s < s1; ++s) {
        const float* xp = in + (grid.row(s) + t_off) * C + c0;
        const float* gp = g + (s - s0) * grid.wo * CoP + co;
        vf win[KW][V] = {};  // win[j] = g[u - j], zero outside the row
        for (int64_t u = 0; u < grid.wo + KW - 1; ++u, xp += C) {
#pragma GCC unroll 8
            for (int j = KW - 1; j > 0; --j)
#pragma GCC unroll 8
                for (int v = 0; v < V; ++v) win[j][v] = win[j - 1][v];
#pragma GCC unroll 8
            for (int v = 0; v < V; ++v) win[0][v] = u < grid.wo ? load(gp + u * CoP + v * VEC) : vf{};
#pragma GCC unroll 32
            for (int r = 0; r < RC; ++r) {
                const float xs = xp[r];
#pragma GCC unroll 8
                for (int j = 0; j < KW; ++j)
#pragma GCC unroll 8
                    for (int v = 0; v < V; ++v) acc[j][r][v] += xs * win[j][v];
            }
        }
    }
    for (int j = 0; j < KW; ++j)
        for (int r = 0; r < RC; ++r)
            for (int v = 0; v < V; ++v) {
                float* d = dw_t + (j * C + c0 + r) * CoP + co + v * VEC;
                store(d, load(d) + acc[j][r][v], VEC);
            }
}

// All T taps at once, at any offsets (T*RC*V accumulators; the first layer's 3x3 kernel on 3 channels fills 27
// registers): per pixel one load of its gradient vectors feeds T*RC multiply-adds whose input values are broadcast
// straight from the grid, with no window to shift and no pass over the pixels per kernel row. For few input
// channels, where a kernel-row tile has few accumulators per gradient load.
template <int RC, int V, int T>
static inline void dw_tile_taps(const float* in, int64_t C, const float* g, int64_t CoP, const int64_t* off,
                                int64_t c0, int64_t co, const Grid& grid, int64_t s0, int64_t s1, float* dw) {
    vf acc[T][RC][V] = {};
    for (int64_t s = s0; s < s1; ++s) {
        const float* xt[T];  // each tap's input pixel: one pointer a tap, the channels at fixed displacements
        for (int t = 0; t < T; ++t) xt[t] = in + (grid.row(s) + off[t]) * C + c0;
        const float* gp = g + (s - s0) * grid.wo * CoP + co;
        for (int64_t u = 0; u < grid.wo; ++u, gp += CoP) {
            vf gv[V];
#pragma GCC unroll 8
            for (int v = 0; v < V; ++v) gv[v] = load(gp + v * VEC);
#pragma GCC unroll 32
            for (int t = 0; t < T; ++t) {
#pragma GCC unroll 8
                for (int r = 0; r < RC; ++r) {
                    const float xs = xt[t][r];
#pragma GCC unroll 8
                    for (int v = 0; v < V; ++v) acc[t][r][v] += xs * gv[v];
                }
                xt[t] += C;
            }
        }
    }
    for (int t = 0; t < T; ++t)
        for (int r = 0; r < RC; ++r)
            for (int v = 0; v < V; ++v) {
                float* d = dw + (t * C + c0 + r) * CoP + co + v * VEC;
                store(d, load(d) + acc[t][r][v], VEC);
            }
}

// One weight-gradient tile: KW = 1 or 3, the taps of a kernel row from off_t on (`dw_tile_row`); KW > 3, all KW
// taps of the kernel (`dw_tile_taps`). dw_t: the tile's first tap's gradient.
template <int RC, int V, int KW>
static inline void dw_tile(const float* in, int64_t C, const float* g, int64_t CoP, const int64_t* off_t, int64_t c0,
                           int64_t co, const Grid& grid, int64_t s0, int64_t s1, float* dw_t) {
    if constexpr (KW <= 3) dw_tile_row<RC, V, KW>(in, C, g, CoP, off_t[0], c0, co, grid, s0, s1, dw_t);
    else dw_tile_taps<RC, V, KW>(in, C, g, CoP, off_t, c0, co, grid, s0, s1, dw_t);
}

// The last rc < RC input channels: dw_tile<rc, V, KW>, picked at run time among 1..RC-1.
template <int RC, int V, int KW>
static inline void dw_tail(int rc, const float* in, int64_t C, const float* g, int64_t CoP, const int64_t* off_t,
                           int64_t c0, int64_t co, const Grid& grid, int64_t s0, int64_t s1, float* dw_t) {
    if constexpr (RC > 1) {
        if (rc == RC - 1) dw_tile<RC - 1, V, KW>(in, C, g, CoP, off_t, c0, co, grid, s0, s1, dw_t);
        else dw_tail<RC - 1, V, KW>(rc, in, C, g, CoP, off_t, c0, co, grid, s0, s1, dw_t);
    }
}

// Image rows [s0, s1) in chunks that stay in cache; g: the dense gradient (N, Ho, Wo, CoP), or null with
// `pooled` (pool_argmax.h) to expand each chunk's rows into `scratch` (chunk * wo * CoP floats) first, so the
// full-size gradient is never stored.
template <int RC, int V, int KW>
static void dw_rows(const float* in, int64_t C, const float* g, const PooledGrad* pooled, float* scratch, int64_t CoP,
                    const int64_t* off, int T, float* dw, const Grid& grid, int64_t s0, int64_t s1) {
    const int64_t chunk = dw_chunk(grid);
    for (int64_t q0 = s0; q0 < s1; q0 += chunk) {
        const int64_t q1 = std::min(s1, q0 + chunk);
        if (pooled) pooled->lines(grid.ho, grid.wo, CoP, q0, q1, scratch);
        const float* gq = pooled ? scratch : g + q0 * grid.wo * CoP;
        for (int t = 0; t < T; t += KW) {
            float* dw_t = dw + (int64_t)t * C * CoP;
            for (int64_t co = 0; co + V * VEC <= CoP; co += V * VEC) {
                int64_t c = 0;
                for (; c + RC <= C; c += RC) dw_tile<RC, V, KW>(in, C, gq, CoP, off + t, c, co, grid, q0, q1, dw_t);
                if (c < C) dw_tail<RC, V, KW>((int)(C - c), in, C, gq, CoP, off + t, c, co, grid, q0, q1, dw_t);
            }
        }
    }
}

template <int RC, int V, int KW>
static void dw_parallel(const float* in, int64_t C, const float* g, const PooledGrad* pooled, int64_t CoP,
                        const int64_t* off, int T, float* dw, const Grid& grid, int64_t S, int threads) {
    const int64_t size = (int64_t)T * C * CoP;
    std::vector<float> partial((size_t)std::max(threads - 1, 0) * size, 0.0f);
#pragma omp parallel num_threads(threads)
    {
        const ThreadShare share = thread_share(S);
        std::vector<float> scratch(pooled ? (size_t)(dw_chunk(grid) * grid.wo * CoP) : 0);
        float* mine = share.id == 0 ? dw : partial.data() + (size_t)(share.id - 1) * size;
        dw_rows<RC, V, KW>(in, C, g, pooled, scratch.data(), CoP, off, T, mine, grid, share.begin, share.end);
    }
    for (int k = 0; k + 1 < threads; ++k)
        for (int64_t i = 0; i < size; ++i) dw[i] += partial[(size_t)k * size + i];
}

// Tile variants (R or RC, V, KW) that `python -m cnnexp.plan` times on the real shapes: the register budget
// differs between CPUs (32 vector registers with AVX-512, 16 with AVX2; how cheaply spilled accumulators are
// renamed differs between cores), so no single tile is best everywhere. Larger tiles need fewer loads per
// multiply-add, smaller ones never spill. Each list is one home: the table the library reports and the
// instantiations it dispatches to come from the same macro. KW is 1, 3 (a kernel row of three taps), or larger: all
// KW taps of a kernel at once (the weight gradient's (3, 1, 9): a 3x3 kernel on 3 input channels).
#define CONV_TILES(X) X(6, 4, 1) X(4, 4, 1) X(12, 2, 3) X(8, 2, 3) X(12, 2, 1) X(6, 2, 1) X(24, 1, 3) X(12, 1, 3) \
    X(24, 1, 1) X(8, 1, 1)
#define DW_TILES(X) X(6, 4, 1) X(3, 4, 1) X(12, 2, 1) X(6, 2, 1) X(8, 1, 3) X(4, 1, 3) X(24, 1, 1) X(12, 1, 1) \
    X(3, 1, 9)
#define TILE_ROW(a, b, c) {a, b, c},
static const int CONV_TILE_TABLE[][3] = {CONV_TILES(TILE_ROW)};
static const int DW_TILE_TABLE[][3] = {DW_TILES(TILE_ROW)};
#undef TILE_ROW
constexpr int N_CONV_TILES = sizeof(CONV_TILE_TABLE) / sizeof(CONV_TILE_TABLE[0]);
constexpr int N_DW_TILES = sizeof(DW_TILE_TABLE) / sizeof(DW_TILE_TABLE[0]);

// Can tile `t` of `table` run this conv of T taps? V must divide the output vectors; KW = 3 needs kernel rows of
// three, KW > 3 (all taps at once) exactly KW taps.
static bool tile_fits(const int (*table)[3], int t, int64_t vecs, bool rows3, int T) {
    const int kw = table[t][2];
    return vecs % table[t][1] == 0 && (kw == 1 || (kw == 3 ? rows3 : kw == T));
}

// The built-in choice (no planning): register tiles of R*V accumulators (+ KW*V weight vectors + 1 broadcast)
// that fit the vector registers: 32 with AVX-512, 16 with AVX2 (VEC == 8), where the AVX-512 tiles spill
// accumulators to the stack in the inner loop (scripts/tile_mca.py shows it). Kernel rows of three taps pay for
// 1 and 2 vectors (they cut the broadcasts per multiply-add by 3); with 4 vectors the 12 weight registers would
// leave room for only 4 rows.
static int default_conv_tile(int64_t vecs, bool rows3) {
    if (VEC == 8) {                            // 16 registers
        if (vecs % 2 == 0) return 5;           // 6, 2, 1
        return rows3 ? 7 : 9;                  // 12, 1, 3 | 8, 1, 1
    }
    if (vecs % 4 == 0) return 0;               // 6, 4, 1
    if (vecs % 2 == 0) return rows3 ? 2 : 4;   // 12, 2, 3 | 12, 2, 1
    return rows3 ? 6 : 8;                      // 24, 1, 3 | 24, 1, 1
}

// RC channels x V vectors per weight-gradient tile. With one output vector, kernel rows of three (KW = 3: 3*RC
// accumulators and a 3-vector window) cut the loads per multiply-add from 1 + 1/RC to 1/3 + 1/(3*RC).
static int default_dw_tile(int64_t vecs, bool rows3) {
    if (VEC == 8) {                                  // 16 registers: at most 12 accumulators
        if (vecs % 2 == 0) return 3;                 // 6, 2, 1
        return rows3 ? 5 : 7;                        // 4, 1, 3 | 12, 1, 1
    }
    if (vecs % 4 == 0) return 0;  // 6, 4, 1
    if (vecs % 2 == 0) return 2;  // 12, 2, 1
    return rows3 ? 4 : 6;         // 8, 1, 3 | 24, 1, 1
}

// The forward tile to run: `tile`, or the built-in choice when it is negative; -1 when it cannot run this conv.
static int resolve_conv_tile(const int64_t* off, int T, int64_t CoP, int tile) {
    const int64_t vecs = CoP / VEC;
    const bool rows3 = rows_of_three(off, T);
    if (tile < 0) tile = default_conv_tile(vecs, rows3);
    return tile < N_CONV_TILES && tile_fits(CONV_TILE_TABLE, tile, vecs, rows3, T) ? tile : -1;
}

// The weight-gradient tile to run: `tile`, or the built-in choice when it is negative; -1 when it cannot run.
static int resolve_dw_tile(const int64_t* off, int T, int64_t CoP, int tile) {
    const int64_t vecs = CoP / VEC;
    const bool rows3 = rows_of_three(off, T);
    if (tile < 0) tile = default_dw_tile(vecs, rows3);
    return tile < N_DW_TILES && tile_fits(DW_TILE_TABLE, tile, vecs, rows3, T) ? tile : -1;
}

extern "C" {

int cnnexp_vec_width() { return VEC; }

// The tile tables: count, and (R, V, KW) of entry i (which = 0: forward / input gradient, 1: weight gradient).
int cnnexp_tile_count(int which) { return which ? N_DW_TILES : N_CONV_TILES; }
void cnnexp_tile_shape(int which, int i, int* shape) {
    const int* row = which ? DW_TILE_TABLE[i] : CONV_TILE_TABLE[i];
    for (int k = 0; k < 3; ++k) shape[k] = row[k];
}

// out (N, Ho, Wo, Co) dense = conv of the grid `in` ((N*Hs*Ws + span) rows of C) with w (T, C, CoP) at the
// tap offsets off (T,), plus bias (Co,) or NULL, with register tile `tile` of CONV_TILES (-1: the built-in
// choice). Returns the tile used, or -1 when that tile cannot run this conv (nothing is written).
int cnnexp_grid_conv(const float* in, int64_t C, const float* w, int64_t Co, int64_t CoP, const int64_t* off,
                     int T, const float* bias, float* out, int64_t N, int64_t hs, int64_t ws, int64_t ho,
                     int64_t wo, int threads, int tile) {
    const Grid grid{hs, ws, ho, wo};
    const int64_t S = N * ho;
    if ((tile = resolve_conv_tile(off, T, CoP, tile)) < 0) return -1;
    int k = 0;
#define RUN(R, V, KW) \
    if (tile == k++) conv_parallel<R, V, KW>(in, C, w, Co, CoP, off, T, bias, out, grid, S, threads);
    CONV_TILES(RUN)
#undef RUN
    return tile;
}

// The same convolution, max pooled by ph x pw windows that tile it: out (N, Ho/ph, Wo/pw, Co) dense, and idx
// (the same shape, bytes) each pooled value's arg-max tap in its window (pool_argmax.h); relu != 0: then ReLU'd.
// Returns as cnnexp_grid_conv.
int cnnexp_grid_conv_pool(const float* in, int64_t C, const float* w, int64_t Co, int64_t CoP, const int64_t* off,
                          int T, const float* bias, float* out, uint8_t* idx, int64_t N, int64_t hs, int64_t ws,
                          int64_t ho, int64_t wo, int ph, int pw, int relu, int threads, int tile) {
    const Grid grid{hs, ws, ho, wo};
    if ((tile = resolve_conv_tile(off, T, CoP, tile)) < 0) return -1;
    int k = 0;
#define RUN(R, V, KW)                                                                                         \
    if (tile == k++)                                                                                          \
        conv_pool_parallel<R, V, KW>(in, C, w, Co, CoP, off, T, bias, out, idx, grid, N, ph, pw, relu != 0, \
                                     threads);
    CONV_TILES(RUN)
#undef RUN
    return tile;
}

// dw (T, C, CoP), zeroed by the caller, += the weight gradient for the grid `in` and g (N, Ho, Wo, CoP)
// dense; CoP a multiple of the vector width; tile of DW_TILES (-1: the built-in choice). Returns the tile
// used, or -1 when that tile cannot run this gradient (nothing is written).
int cnnexp_grid_conv_weight_grad(const float* in, int64_t C, const float* g, int64_t CoP, const int64_t* off,
                                 int T, float* dw, int64_t N, int64_t hs, int64_t ws, int64_t ho, int64_t wo,
                                 int threads, int tile) {
    const Grid grid{hs, ws, ho, wo};
    if ((tile = resolve_dw_tile(off, T, CoP, tile)) < 0) return -1;
    int k = 0;
#define RUN(RC, V, KW) \
    if (tile == k++) dw_parallel<RC, V, KW>(in, C, g, nullptr, CoP, off, T, dw, grid, N * ho, threads);
    DW_TILES(RUN)
#undef RUN
    return tile;
}

// The same weight gradient when a ph x pw max pool that tiles the conv's output followed it: from the pooled
// gradient gy (N, Ho/ph, Wo/pw, CoP) dense and its arg-max taps idx (the same shape, bytes), without storing
// the full-size gradient (PooledGrad). The same sums in the same order as the dense call on the scattered
// gradient. Returns as cnnexp_grid_conv_weight_grad.
int cnnexp_grid_conv_weight_grad_pooled(const float* in, int64_t C, const float* gy, const uint8_t* idx,
                                        int64_t CoP, const int64_t* off, int T, float* dw, int64_t N, int64_t hs,
                                        int64_t ws, int64_t ho, int64_t wo, int ph, int pw, int threads, int tile) {
    const Grid grid{hs, ws, ho, wo};
    const PooledGrad pooled{gy, idx, ph, pw};
    if ((tile = resolve_dw_tile(off, T, CoP, tile)) < 0) return -1;
    int k = 0;
#define RUN(RC, V, KW) \
    if (tile == k++) dw_parallel<RC, V, KW>(in, C, nullptr, &pooled, CoP, off, T, dw, grid, N * ho, threads);
    DW_TILES(RUN)
#undef RUN
    return tile;
}

}  // extern "C"
