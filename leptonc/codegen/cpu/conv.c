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

/* The A of a convolution's GEMM read straight from its input (implicit im2col): row i is output pixel
 * row0 + i, its columns (kh, kw, c) over the input channels [c0, c0 + CG), zero where the window leaves
 * the input. lep_conv_pack_a packs A[m0:m1, k0:k0+kc] into lep_pack_a's layout (micro-panels of
 * LEP_GEMM_MR rows, k-major, the last one with the rows left). */
typedef struct {
    const float* x;
    const lep_window* g;
    int64_t c0, CG, row0;
} lep_conv_rows;

static void lep_conv_pack_a(const void* ctx, int64_t m0, int64_t m1, int64_t k0, int64_t kc, float* Ap) {
    const lep_conv_rows* a = (const lep_conv_rows*)ctx;
    const lep_window* g = a->g;
    const int64_t C = g->C, CG = a->CG, KW = g->KW, RW = KW * CG, k1 = k0 + kc;
    const int runs = g->dw == 1 && CG == C;  /* the taps of one kernel row are one run of x */
    for (int64_t i0 = m0; i0 < m1; i0 += LEP_GEMM_MR) {
        const int64_t mr = m1 - i0 < LEP_GEMM_MR ? m1 - i0 : LEP_GEMM_MR;
        int64_t hb[LEP_GEMM_MR], wb[LEP_GEMM_MR];
        const float* xn[LEP_GEMM_MR];
        for (int64_t i = 0; i < mr; ++i) {
            const int64_t p = a->row0 + i0 + i, n = p / (g->OH * g->OW), oh = p / g->OW % g->OH, ow = p % g->OW;
            hb[i] = oh * g->sh - g->ph;
            wb[i] = ow * g->sw - g->pw;
            xn[i] = a->x + n * g->H * g->W * C + a->c0;
        }
        for (int64_t kh = k0 / RW; kh * RW < k1; ++kh) {  /* the part [s0, s1) of kernel row kh in [k0, k1) */
            const int64_t s0 = kh * RW > k0 ? kh * RW : k0, s1 = (kh + 1) * RW < k1 ? (kh + 1) * RW : k1;
            float* dst = Ap + (s0 - k0) * mr;  /* element k of row i at dst[(k - s0) * mr + i] */
            const float* src[LEP_GEMM_MR];     /* element k of row i at src[i][k - s0], when inside */
            int64_t v0[LEP_GEMM_MR], v1[LEP_GEMM_MR], inside = 0;
            for (int64_t i = 0; i < mr; ++i) {
                const int64_t h = hb[i] + kh * g->dh;
                v0[i] = v1[i] = s1;
                src[i] = xn[i];
                if (h < 0 || h >= g->H || !runs) continue;
                const int64_t lo = wb[i] < 0 ? -wb[i] : 0, hi = g->W - wb[i] < KW ? g->W - wb[i] : KW;
                v0[i] = kh * RW + lo * CG;
                v1[i] = kh * RW + (hi > lo ? hi : lo) * CG;
                v0[i] = v0[i] < s0 ? s0 : v0[i] > s1 ? s1 : v0[i];
                v1[i] = v1[i] < v0[i] ? v0[i] : v1[i] > s1 ? s1 : v1[i];
                src[i] = xn[i] + (h * g->W + wb[i]) * C + (s0 - kh * RW);
                inside += v0[i] == s0 && v1[i] == s1;
            }
            if (inside == LEP_GEMM_MR) {  /* the whole panel inside the input: a transpose of 8 runs */
                for (int64_t k = 0; k < s1 - s0; ++k)
                    #pragma GCC unroll 16
                    for (int i = 0; i < LEP_GEMM_MR; ++i) dst[k * LEP_GEMM_MR + i] = src[i][k];
                continue;
            }
            for (int64_t i = 0; i < mr; ++i) {
                const int64_t h = hb[i] + kh * g->dh;
                if (!runs && h >= 0 && h < g->H) {  /* tap by tap */
                    for (int64_t k = s0; k < s1; ++k) {
                        const int64_t kw = (k - kh * RW) / CG, iw = wb[i] + kw * g->dw;
                        dst[(k - s0) * mr + i] = iw >= 0 && iw < g->W ?
                            xn[i][(h * g->W + iw) * C + (k - kh * RW) % CG] : 0.0f;
                    }
                    continue;
                }
                for (int64_t k = s0; k < v0[i]; ++k) dst[(k - s0) * mr + i] = 0.0f;
                for (int64_t k = v0[i]; k < v1[i]; ++k) dst[(k - s0) * mr + i] = src[i][k - s0];
                for (int64_t k = v1[i]; k < s1; ++k) dst[(k - s0) * mr + i] = 0.0f;
            }
        }
        Ap += mr * kc;
    }
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

/* Output pixels of one task of a convolution that splits its pixels over the threads: about `target`, and
 * a multiple of the thread count in tasks, so that the threads finish together. */
static int64_t lep_conv_task_pixels(int64_t P, int64_t target) {
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
