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
                memset(dst, 0, (size_t)(KW * CG) * sizeof(float));
                continue;
            }
            const float* xr = x + (n * g->H + h) * g->W * C + c0;
            if (runs) {  /* taps kw in [lo, hi) are inside the input */
                int64_t lo = w0 < 0 ? -w0 : 0, hi = g->W - w0;
                lo = lo < KW ? lo : KW;
                hi = hi < KW ? hi : KW;
                hi = hi > lo ? hi : lo;
                memset(dst, 0, (size_t)(lo * CG) * sizeof(float));
                memcpy(dst + lo * CG, xr + (w0 + lo) * C, (size_t)((hi - lo) * CG) * sizeof(float));
                memset(dst + hi * CG, 0, (size_t)((KW - hi) * CG) * sizeof(float));
                continue;
            }
            for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t w = w0 + kw * g->dw;
                if (w < 0 || w >= g->W) memset(dst + kw * CG, 0, (size_t)CG * sizeof(float));
                else memcpy(dst + kw * CG, xr + w * C, (size_t)CG * sizeof(float));
            }
        }
    }
}

/* y[c] (+)= sum over the taps inside the input of x[tap, c] * w[tap, c], for cb <= LEP_DW_BLOCK channels
 * starting at x, w (tap strides xs, ws in floats); acc starts at bias (or 0). */
#define LEP_DW_BLOCK 64
static inline __attribute__((always_inline)) void lep_depthwise_block(
        float* restrict y, const float* restrict x, const float* restrict w, const float* restrict bias,
        const int64_t cb, const lep_window* g, int64_t n, int64_t oh, int64_t ow) {
    float acc[LEP_DW_BLOCK];
    for (int64_t c = 0; c < cb; ++c) acc[c] = bias ? bias[c] : 0.0f;
    for (int64_t kh = 0; kh < g->KH; ++kh) {
        const int64_t h = oh * g->sh - g->ph + kh * g->dh;
        if (h < 0 || h >= g->H) continue;
        for (int64_t kw = 0; kw < g->KW; ++kw) {
            const int64_t iw = ow * g->sw - g->pw + kw * g->dw;
            if (iw < 0 || iw >= g->W) continue;
            const float* xp = x + ((n * g->H + h) * g->W + iw) * g->C;
            const float* wp = w + (kh * g->KW + kw) * g->C;
            #pragma omp simd
            for (int64_t c = 0; c < cb; ++c) acc[c] += xp[c] * wp[c];
        }
    }
    for (int64_t c = 0; c < cb; ++c) y[c] = acc[c];
}

/* Output rows [r0, r1) (r = n * OH + oh) of a depthwise convolution: channel c of the output is channel c
 * of the input through its own filter w[kh, kw, 0, c], plus bias[c] when bias is not NULL. */
static void lep_depthwise_nhwc(float* y, const float* x, const float* w, const float* bias, const lep_window* g,
                               int64_t r0, int64_t r1) {
    const int64_t C = g->C, full = C - C % LEP_DW_BLOCK;
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / g->OH, oh = r % g->OH;
        for (int64_t ow = 0; ow < g->OW; ++ow) {
            float* yp = y + (r * g->OW + ow) * C;
            for (int64_t c0 = 0; c0 < full; c0 += LEP_DW_BLOCK)  /* a constant width: acc stays in registers */
                lep_depthwise_block(yp + c0, x + c0, w + c0, bias ? bias + c0 : NULL, LEP_DW_BLOCK, g, n, oh, ow);
            if (full < C)
                lep_depthwise_block(yp + full, x + full, w + full, bias ? bias + full : NULL, C - full, g, n, oh, ow);
        }
    }
}
