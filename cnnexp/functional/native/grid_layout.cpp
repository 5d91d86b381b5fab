// The layouts the direct convolution (grid_conv.cpp) reads, each written in one pass (CPU, float32).
//
// The PyTorch versions (grid_gemm.grid_input, grid_gemm.grad_grid, a permute into zero-padded taps) take five to
// ten small tensor operations a call, a few microseconds each, which is most of a small convolution's cost. These
// are the same layouts:
//
// cnnexp_to_grid: a (N, C, H, W) tensor, read through its strides (NCHW and channels-last alike), onto the
//     flattened grid of grid_gemm.grid_dims: buf (rows, Cb) is zero except pixel (n, y, x), channels [0, C), at
//     row first + (n*hs + y)*ws + x. The zero rows and columns are the convolution's shared padding, the
//     zero channels [C, Cb) the vector-width padding of a gradient.
// cnnexp_pooled_to_grid: the same grid (Cb = C) of the gradient of a conv followed by a max pool that tiles it,
//     written from the pooled gradient and its arg-max taps (PooledGrad, pool_argmax.h), so that the input
//     gradient never stores the full-size gradient nor copies it.
// cnnexp_tap_weights: a (Co, Ci, kh, kw) weight as the kernel's (T, rows, cols) taps, zero-padded:
//     out[i*kw + j, c, o] = w[o, c, i, j] (forward), or, with flip, the input gradient's flipped and
//     transposed kernel out[i*kw + j, o, c] = w[o, c, kh-1-i, kw-1-j].
#include <cstdint>
#include <cstring>

#include "pool_argmax.h"

namespace {

constexpr int64_t PARALLEL_MIN_FLOATS = 1 << 16;  // below this a copy is not worth waking threads for

void zero(float* p, int64_t n) {
    if (n > 0) std::memset(p, 0, n * sizeof(float));
}

// The grid `buf` (rows, Cb) of an (N, H, W) image batch: zero but for pixel (n, y, x) at row
// first + (n*hs + y)*ws + x, whose Cb floats `line(n, y, out)` writes for the W pixels of each image line.
template <class Line>
void write_grid(float* buf, int64_t rows, int64_t Cb, int64_t first, int64_t N, int64_t H, int64_t W, int64_t hs,
                int64_t ws, int threads, const Line& line) {
    const int64_t lines = N * hs;  // grid lines of ws rows each, image line y < H holds pixels
    const int64_t end = first + lines * ws;
    zero(buf, first * Cb);
    zero(buf + end * Cb, (rows - end) * Cb);
    const int nthreads = lines * ws * Cb >= PARALLEL_MIN_FLOATS ? threads : 1;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t k = 0; k < lines; ++k) {
        const int64_t n = k / hs, y = k % hs;
        float* out = buf + (first + k * ws) * Cb;
        if (y >= H) {
            zero(out, ws * Cb);
            continue;
        }
        line(n, y, out);
        zero(out + W * Cb, (ws - W) * Cb);
    }
}

}  // namespace

extern "C" {

void cnnexp_to_grid(const float* x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t sn, int64_t sc, int64_t sy,
                    int64_t sx, float* buf, int64_t rows, int64_t Cb, int64_t first, int64_t hs, int64_t ws,
                    int threads) {
    const bool dense_pixels = sc == 1;                     // a pixel's channels are adjacent (channels-last)
    const bool dense_lines = dense_pixels && sx == C && Cb == C;  // and a line's pixels too: one memcpy a line
    write_grid(buf, rows, Cb, first, N, H, W, hs, ws, threads, [&](int64_t n, int64_t y, float* out) {
        const float* in = x + n * sn + y * sy;
        if (dense_lines) {
            std::memcpy(out, in, W * C * sizeof(float));
        } else if (sx == 1 && C == 3 && Cb == 3) {  // planar RGB images (NCHW), the usual first layer: pixel by pixel
            const float *r = in, *g = in + sc, *b = in + 2 * sc;
            for (int64_t px = 0; px < W; ++px, out += 3) out[0] = r[px], out[1] = g[px], out[2] = b[px];
        } else if (sx == 1) {  // planar lines (NCHW): read each channel's line in order, write it strided
            for (int64_t c = 0; c < C; ++c) {
                const float* p = in + c * sc;
                for (int64_t px = 0; px < W; ++px) out[px * Cb + c] = p[px];
            }
            if (Cb > C)
                for (int64_t px = 0; px < W; ++px) zero(out + px * Cb + C, Cb - C);
        } else {
            for (int64_t px = 0; px < W; ++px) {
                const float* p = in + px * sx;
                float* o = out + px * Cb;
                if (dense_pixels) {
                    std::memcpy(o, p, C * sizeof(float));
                } else {
                    for (int64_t c = 0; c < C; ++c) o[c] = p[c * sc];
                }
                zero(o + C, Cb - C);
            }
        }
    });
}

void cnnexp_pooled_to_grid(const float* gy, const uint8_t* idx, int64_t N, int64_t C, int64_t ho, int64_t wo, int ph,
                           int pw, float* buf, int64_t rows, int64_t first, int64_t hs, int64_t ws, int threads) {
    const PooledGrad pooled{gy, idx, ph, pw};
    write_grid(buf, rows, C, first, N, ho, wo, hs, ws, threads, [&](int64_t n, int64_t y, float* out) {
        pooled.lines(ho, wo, C, n * ho + y, n * ho + y + 1, out);
    });
}

void cnnexp_tap_weights(const float* w, int64_t Co, int64_t Ci, int64_t kh, int64_t kw, int flip, float* out,
                        int64_t rows, int64_t cols) {
    const int64_t T = kh * kw;
    zero(out, T * rows * cols);
    for (int64_t o = 0; o < Co; ++o)
        for (int64_t c = 0; c < Ci; ++c)
            for (int64_t t = 0; t < T; ++t) {
                const float v = w[(o * Ci + c) * T + t];
                if (flip) {
                    out[((T - 1 - t) * rows + o) * cols + c] = v;  // tap (kh-1-i, kw-1-j) is T-1-t
                } else {
                    out[(t * rows + c) * cols + o] = v;
                }
            }
}

}  // extern "C"
