/* leptonc channels-last convolution and pooling helpers (included in a model's source when it has one).
 *
 * Layouts: input x[N, H, W, C], output y[N, OH, OW, O], weight w[KH, KW, C / G, O]; a 1-d op is the
 * 2-d one with H = KH = OH = 1. Every helper works on a range of output rows or pixels on the calling
 * thread, so that the kernel decides how to split the work and where to apply its epilogue.
 */

typedef struct {
    int64_t N, H, W, C;                 /* input, channels last */
    int64_t OH, OW;                     /* output pixels */
    int64_t KH, KW, sh, sw, dh, dw;     /* window */
    int64_t ph, pw;                     /* padding at the start of each spatial dim */
} lep_window;

/* dst[0:n] = src[0:n] (or zeros when src is NULL): short runs inline, long ones by memcpy/memset. */
static inline void lep_run_copy(float* dst, const float* src, int64_t n) {
    if (n >= 64) {
        if (src) memcpy(dst, src, (size_t)n * sizeof(float));
        else memset(dst, 0, (size_t)n * sizeof(float));
    } else if (src) {
        for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
    } else {
        for (int64_t i = 0; i < n; ++i) dst[i] = 0.0f;
    }
}

/* Rows [p0, p1) of the column matrix of a convolution over the input channels [c0, c0 + CG): row p is
 * output pixel p (n, oh, ow flattened) with its KH * KW * CG inputs in (kh, kw, c) order, zero where the
 * window leaves the input; row p is stored at col + (p - p0) * ldcol. */
static void lep_im2col_nhwc(float* col, int64_t ldcol, const float* x, const lep_window* g, int64_t c0,
                            int64_t CG, int64_t p0, int64_t p1) {
    const int64_t KW = g->KW, C = g->C;
    const int runs = g->dw == 1 && CG == C;  /* the taps of one kernel row are one run of x */
    for (int64_t p = p0; p < p1; ++p) {
        const int64_t n = p / (g->OH * g->OW), oh = p / g->OW % g->OH, ow = p % g->OW;
        const int64_t w0 = ow * g->sw - g->pw;
        float* dst = col + (p - p0) * ldcol;
        for (int64_t kh = 0; kh < g->KH; ++kh, dst += KW * CG) {
            const int64_t h = oh * g->sh - g->ph + kh * g->dh;
            if (h < 0 || h >= g->H) {
                lep_run_copy(dst, NULL, KW * CG);
                continue;
            }
            const float* xr = x + (n * g->H + h) * g->W * C + c0;
            if (runs) {  /* taps kw in [lo, hi) are inside the input */
                int64_t lo = w0 < 0 ? -w0 : 0, hi = g->W - w0;
                lo = lo < KW ? lo : KW;
                hi = hi < KW ? hi : KW;
                hi = hi > lo ? hi : lo;
                if (lo > 0) lep_run_copy(dst, NULL, lo * CG);
                lep_run_copy(dst + lo * CG, xr + (w0 + lo) * C, (hi - lo) * CG);
                if (hi < KW) lep_run_copy(dst + hi * CG, NULL, (KW - hi) * CG);
                continue;
            }
            for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t w = w0 + kw * g->dw;
                lep_run_copy(dst + kw * CG, w < 0 || w >= g->W ? NULL : xr + w * C, CG);
            }
        }
    }
}

/* Per-thread buffer for a block of im2col rows, grown on demand and kept (reused, it stays in cache). */
static __thread float* lep_conv_buf;
static __thread size_t lep_conv_cap;

static float* lep_conv_buffer(size_t floats) {
    if (floats > lep_conv_cap) {
        free(lep_conv_buf);
        lep_conv_buf = NULL;
        if (posix_memalign((void**)&lep_conv_buf, 64, floats * sizeof(float)) != 0) abort();
        lep_conv_cap = floats;
    }
    return lep_conv_buf;
}

/* What a conv hands to lep_gemm_packed as its epilogue context: the GEMM computes the output block that
 * starts at row row0 and column col0 (a block of pixels, a group's channels); on each finished tile the
 * epilogue adds the bias (when not NULL) and runs the kernel's fused ops `ep` (when not NULL), which take
 * coordinates in the whole output. */
typedef struct {
    lep_epilogue ep;
    const void* ctx;
    const float* bias;
    int64_t row0, col0;
} lep_conv_tile;

static void lep_conv_epilogue(const void* ctx, float* C, int64_t ldc, int64_t i0, int64_t i1, int64_t j0,
                              int64_t j1) {
    const lep_conv_tile* t = (const lep_conv_tile*)ctx;
    if (t->bias) {
        const float* b = t->bias + t->col0;
        for (int64_t i = i0; i < i1; ++i) {
            float* c = C + i * ldc;
            #pragma omp simd
            for (int64_t j = j0; j < j1; ++j) c[j] += b[j];
        }
    }
    if (t->ep) t->ep(t->ctx, C - t->row0 * ldc - t->col0, ldc, i0 + t->row0, i1 + t->row0, j0 + t->col0,
                     j1 + t->col0);
}

/* Rows of the column matrix one task of a blocked convolution builds and multiplies: about `target`, and a
 * multiple of the thread count in tasks, so that the threads finish together. */
static int64_t lep_conv_rows(int64_t P, int64_t target) {
    const int64_t nt = omp_get_max_threads();
    int64_t tasks = (P + target - 1) / target;
    tasks = (tasks + nt - 1) / nt * nt;
    return (P + tasks - 1) / tasks;
}

/* 16 floats at any address: a vector of the target's widest kind (one zmm, two ymm, ...). */
typedef float lep_v16 __attribute__((vector_size(64), aligned(4)));

/* np output pixels ow, ow + 1, ... of output row (n, oh), channels [c, c + 16), whose windows lie inside
 * the input along the width; kernel rows [kh0, kh1) lie inside along the height. */
static inline __attribute__((always_inline)) void lep_depthwise_pixels(
        float* y, const float* x, const float* w, const float* bias, const lep_window* g, int64_t n, int64_t oh,
        int64_t ow, int64_t c, int64_t kh0, int64_t kh1, const int np) {
    const int64_t C = g->C, step = g->sw * C;
    const lep_v16 b = bias ? *(const lep_v16*)(bias + c) : (lep_v16){0};
    lep_v16 acc[8];
    for (int p = 0; p < np; ++p) acc[p] = b;
    for (int64_t kh = kh0; kh < kh1; ++kh) {
        const float* xr = x + ((n * g->H + oh * g->sh - g->ph + kh * g->dh) * g->W + ow * g->sw - g->pw) * C + c;
        const float* wr = w + kh * g->KW * C + c;
        for (int64_t kw = 0; kw < g->KW; ++kw) {
            const lep_v16 wv = *(const lep_v16*)(wr + kw * C);
            const float* xp = xr + kw * g->dw * C;
            for (int p = 0; p < np; ++p) acc[p] += *(const lep_v16*)(xp + p * step) * wv;
        }
    }
    float* yp = y + ((n * g->OH + oh) * g->OW + ow) * C + c;
    for (int p = 0; p < np; ++p) *(lep_v16*)(yp + p * C) = acc[p];
}

/* One output pixel, channels [c0, c1), any window (taps outside the input skipped). */
static void lep_depthwise_edge(float* y, const float* x, const float* w, const float* bias, const lep_window* g,
                               int64_t n, int64_t oh, int64_t ow, int64_t c0, int64_t c1) {
    const int64_t C = g->C;
    float* yp = y + ((n * g->OH + oh) * g->OW + ow) * C;
    for (int64_t c = c0; c < c1; ++c) yp[c] = bias ? bias[c] : 0.0f;
    for (int64_t kh = 0; kh < g->KH; ++kh) {
        const int64_t h = oh * g->sh - g->ph + kh * g->dh;
        if (h < 0 || h >= g->H) continue;
        for (int64_t kw = 0; kw < g->KW; ++kw) {
            const int64_t iw = ow * g->sw - g->pw + kw * g->dw;
            if (iw < 0 || iw >= g->W) continue;
            const float* xp = x + ((n * g->H + h) * g->W + iw) * C;
            const float* wp = w + (kh * g->KW + kw) * C;
            #pragma omp simd
            for (int64_t c = c0; c < c1; ++c) yp[c] += xp[c] * wp[c];
        }
    }
}

/* Output rows [r0, r1) (r = n * OH + oh) of a depthwise convolution: channel c of the output is channel c
 * of the input through its own filter w[kh, kw, 0, c], plus bias[c] when bias is not NULL. Pixels whose
 * windows lie inside the input run 8 at a time, 16 channels a vector; the others, and channels past the
 * last 16, tap by tap. */
static void lep_depthwise_nhwc(float* y, const float* x, const float* w, const float* bias, const lep_window* g,
                               int64_t r0, int64_t r1) {
    const int64_t C = g->C, vc = C - C % 16;
    /* inside along the width: ow * sw - pw >= 0 and ow * sw - pw + (KW - 1) * dw < W */
    int64_t lo = (g->pw + g->sw - 1) / g->sw, hi = g->W - 1 - (g->KW - 1) * g->dw + g->pw;
    hi = hi < 0 ? 0 : hi / g->sw + 1;
    hi = hi < g->OW ? hi : g->OW;
    lo = lo < hi ? lo : hi;
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / g->OH, oh = r % g->OH;
        int64_t kh0 = 0, kh1 = g->KH;  /* kernel rows inside the input */
        while (kh0 < kh1 && oh * g->sh - g->ph + kh0 * g->dh < 0) ++kh0;
        while (kh1 > kh0 && oh * g->sh - g->ph + (kh1 - 1) * g->dh >= g->H) --kh1;
        for (int64_t c = 0; c < vc; c += 16) {
            int64_t ow = lo;
            for (; ow + 8 <= hi; ow += 8) lep_depthwise_pixels(y, x, w, bias, g, n, oh, ow, c, kh0, kh1, 8);
            if (ow + 4 <= hi) {
                lep_depthwise_pixels(y, x, w, bias, g, n, oh, ow, c, kh0, kh1, 4);
                ow += 4;
            }
            for (; ow < hi; ++ow) lep_depthwise_pixels(y, x, w, bias, g, n, oh, ow, c, kh0, kh1, 1);
        }
        for (int64_t ow = 0; ow < g->OW; ++ow) {
            const int64_t c0 = ow >= lo && ow < hi ? vc : 0;
            if (c0 < C) lep_depthwise_edge(y, x, w, bias, g, n, oh, ow, c0, C);
        }
    }
}
