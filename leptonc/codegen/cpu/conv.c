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

/* The kernel taps [*k0, *k1) of output position o whose input position o * s - p + k * d lies in [lo, hi). */
static inline void lep_taps_within(int64_t o, int64_t s, int64_t p, int64_t d, int64_t K, int64_t lo, int64_t hi,
                                   int64_t* k0, int64_t* k1) {
    const int64_t b = o * s - p;
    const int64_t first = lo > b ? (lo - b + d - 1) / d : 0;
    int64_t end = hi > b ? (hi - b + d - 1) / d : 0;
    end = end < K ? end : K;
    *k0 = first;
    *k1 = end > first ? end : first;
}

/* The A of a convolution's GEMM read straight from its input (implicit im2col): row i is output pixel
 * row0 + i, its columns (kh, kw, c) over the input channels [c0, c0 + CG), zero where the window leaves
 * the input. lep_conv_pack_a packs A[m0:m1, k0:k0+kc] into lep_pack_a's layout (micro-panels of
 * LEP_GEMM_MR rows, k-major, the last one with the rows left). */
typedef struct {
    const float* x;
    const lep_window* g;
    int64_t c0, CG, row0;
} lep_conv_rows;

/* Where the window of row p of A starts: input row *hb and column *wb (negative in the padding), and the
 * input channels of its image at *xn. */
static inline void lep_conv_window_at(const lep_conv_rows* a, int64_t p, int64_t* hb, int64_t* wb, const float** xn) {
    const lep_window* g = a->g;
    const int64_t n = p / (g->OH * g->OW), oh = p / g->OW % g->OH, ow = p % g->OW;
    *hb = oh * g->sh - g->ph;
    *wb = ow * g->sw - g->pw;
    *xn = a->x + n * g->H * g->W * g->C + a->c0;
}

/* Packs A by runs: the columns that one row reads from consecutive input floats. A run is a kernel row's KW * CG
 * floats when the group takes every channel and the width dilation is 1, else one tap's CG channels (a grouped or
 * dilated conv); the part of a run in the padding is zero. */
static void lep_conv_pack_a(const void* ctx, int64_t m0, int64_t m1, int64_t k0, int64_t kc, float* Ap) {
    const lep_conv_rows* a = (const lep_conv_rows*)ctx;
    const lep_window* g = a->g;
    const int64_t C = g->C, CG = a->CG, KW = g->KW, RW = KW * CG, k1 = k0 + kc;
    const int64_t TW = g->dw == 1 && CG == C ? KW : 1, RL = TW * CG;  /* taps per run, and its columns */
    for (int64_t i0 = m0; i0 < m1; i0 += LEP_GEMM_MR) {
        const int64_t mr = m1 - i0 < LEP_GEMM_MR ? m1 - i0 : LEP_GEMM_MR;
        int64_t hb[LEP_GEMM_MR], wb[LEP_GEMM_MR];
        const float* xn[LEP_GEMM_MR];
        for (int64_t i = 0; i < mr; ++i) lep_conv_window_at(a, a->row0 + i0 + i, hb + i, wb + i, xn + i);
        for (int64_t q = k0 / RL; q * RL < k1; ++q) {  /* the part [s0, s1) of run q in [k0, k1) */
            const int64_t r0 = q * RL, kh = r0 / RW, kw0 = r0 % RW / CG;
            const int64_t s0 = r0 > k0 ? r0 : k0, s1 = r0 + RL < k1 ? r0 + RL : k1;
            float* dst = Ap + (s0 - k0) * mr;  /* element k of row i at dst[(k - s0) * mr + i] */
            const float* src[LEP_GEMM_MR];     /* element k of row i at src[i][k - s0], when inside */
            int64_t v0[LEP_GEMM_MR], v1[LEP_GEMM_MR], inside = 0;
            for (int64_t i = 0; i < mr; ++i) {
                const int64_t h = hb[i] + kh * g->dh, w = wb[i] + kw0 * g->dw;  /* the run's first tap */
                v0[i] = v1[i] = s1;
                src[i] = xn[i];
                if (h < 0 || h >= g->H) continue;
                const int64_t lo = w < 0 ? -w : 0, hi = g->W - w < TW ? g->W - w : TW;  /* its taps inside */
                v0[i] = r0 + lo * CG;
                v1[i] = r0 + (hi > lo ? hi : lo) * CG;
                v0[i] = v0[i] < s0 ? s0 : v0[i] > s1 ? s1 : v0[i];
                v1[i] = v1[i] < v0[i] ? v0[i] : v1[i] > s1 ? s1 : v1[i];
                src[i] = xn[i] + (h * g->W + w) * C + (s0 - r0);
                inside += v0[i] == s0 && v1[i] == s1;
            }
            if (inside == LEP_GEMM_MR) {  /* the whole panel inside the input: a transpose of MR runs */
                for (int64_t k = 0; k < s1 - s0; ++k)
                    #pragma GCC unroll 16
                    for (int i = 0; i < LEP_GEMM_MR; ++i) dst[k * LEP_GEMM_MR + i] = src[i][k];
                continue;
            }
            for (int64_t i = 0; i < mr; ++i) {
                for (int64_t k = s0; k < v0[i]; ++k) dst[(k - s0) * mr + i] = 0.0f;
                for (int64_t k = v0[i]; k < v1[i]; ++k) dst[(k - s0) * mr + i] = src[i][k - s0];
                for (int64_t k = v1[i]; k < s1; ++k) dst[(k - s0) * mr + i] = 0.0f;
            }
        }
        Ap += mr * kc;
    }
}

#if defined(__AVX512F__) && defined(__AVX512VL__) && LEP_GEMM_MR == 8
#define LEP_CONV_CF_LANES 16 /* the widest window (KW) packed by masked loads */
/* The pixels of a panel that lie in one output row, lanes [lane0, lane0 + cnt): their image's channel plane c0
 * at x, their windows' first input row hb; for each kernel column kw, where lane 0 would read in an input row
 * (col[kw], lane j at col[kw] + j * sw) and which lanes read inside the row (lanes[kw]; even[kw]: the same as
 * floats 2j of a 16-float load, for sw = 2). */
typedef struct {
    const float* x;
    int64_t hb;
    int64_t col[LEP_CONV_CF_LANES];
    __mmask8 lanes[LEP_CONV_CF_LANES];
    __mmask16 even[LEP_CONV_CF_LANES];
} lep_conv_cf_run;

/* The run of pixels p0 .. p0 + cnt - 1 (one output row) in lanes [lane0, lane0 + cnt). */
static void lep_conv_cf_run_at(lep_conv_cf_run* run, const lep_conv_rows* a, int64_t p0, int lane0, int cnt) {
    const lep_window* g = a->g;
    const int64_t n = p0 / (g->OH * g->OW), oh = p0 / g->OW % g->OH, wb = p0 % g->OW * g->sw - g->pw, sw = g->sw;
    run->x = a->x + (n * g->C + a->c0) * g->H * g->W;
    run->hb = oh * g->sh - g->ph;
    for (int64_t kw = 0; kw < g->KW; ++kw) {
        const int64_t col0 = wb + kw * g->dw;  /* the column of lane lane0 */
        unsigned m = ((1u << cnt) - 1u) << lane0;
        if (col0 < 0 || col0 + (cnt - 1) * sw >= g->W) {  /* some lanes in the padding */
            m = 0;
            for (int j = 0; j < cnt; ++j) m |= (unsigned)(col0 + j * sw >= 0 && col0 + j * sw < g->W) << (lane0 + j);
        }
        unsigned e = m;  /* lane j -> float 2j */
        e = (e | (e << 4)) & 0x0F0Fu;
        e = (e | (e << 2)) & 0x3333u;
        e = (e | (e << 1)) & 0x5555u;
        run->col[kw] = col0 - lane0 * sw;
        run->lanes[kw] = (__mmask8)m;
        run->even[kw] = (__mmask16)e;
    }
}
#endif

/* lep_conv_pack_a for an input stored channels-first, x[N, C, H, W], with A's columns in the order (c, kh, kw)
 * (the weight packed that way). On AVX-512, with a width stride of 1 or 2, each column of a panel is one
 * masked load per output row its pixels lie in (zeros where the window leaves the input, nothing read
 * outside it); elsewhere the panel is packed pixel by pixel. */
static void lep_conv_pack_a_cf(const void* ctx, int64_t m0, int64_t m1, int64_t k0, int64_t kc, float* Ap) {
    const lep_conv_rows* a = (const lep_conv_rows*)ctx;
    const lep_window* g = a->g;
    const int64_t H = g->H, W = g->W, HW = H * W, KH = g->KH, KW = g->KW, k1 = k0 + kc;
    const int64_t c_k0 = k0 / (KH * KW), kh_k0 = k0 / KW % KH, kw_k0 = k0 % KW;  /* column k0 */
    for (int64_t i0 = m0; i0 < m1; i0 += LEP_GEMM_MR) {
        const int mr = (int)(m1 - i0 < LEP_GEMM_MR ? m1 - i0 : LEP_GEMM_MR);
#ifdef LEP_CONV_CF_LANES
        if (g->sw <= 2 && KW <= LEP_CONV_CF_LANES) {
            lep_conv_cf_run run[LEP_GEMM_MR];
            int nrun = 0;
            for (int j = 0; j < mr; ++nrun) {
                const int64_t p = a->row0 + i0 + j, left = g->OW - p % g->OW;
                const int cnt = left < mr - j ? (int)left : mr - j;
                lep_conv_cf_run_at(run + nrun, a, p, j, cnt);
                j += cnt;
            }
            const __m512i even = _mm512_set_epi32(15, 13, 11, 9, 7, 5, 3, 1, 14, 12, 10, 8, 6, 4, 2, 0);
            int64_t c = c_k0, kh = kh_k0, kw0 = kw_k0;
            for (int64_t k = k0; k < k1; kw0 = 0, kh = kh + 1 == KH ? 0 : kh + 1, c += kh == 0) {
                /* the columns [kw0, kw1) of kernel row (c, kh) */
                const int64_t kw1 = KW < kw0 + (k1 - k) ? KW : kw0 + (k1 - k);
                const float* row[LEP_GEMM_MR];  /* each run's input row, NULL outside the input */
                for (int r = 0; r < nrun; ++r) {
                    const int64_t h = run[r].hb + kh * g->dh;
                    row[r] = h >= 0 && h < H ? run[r].x + c * HW + h * W : NULL;
                }
                if (nrun == 1 && mr == LEP_GEMM_MR && g->sw == 2) {  /* the common case: one row, stride 2 */
                    float* dst = Ap + (k - k0) * LEP_GEMM_MR;
                    if (!row[0]) {
                        for (int64_t kw = kw0; kw < kw1; ++kw, dst += LEP_GEMM_MR) _mm256_storeu_ps(dst, _mm256_setzero_ps());
                    } else {
                        for (int64_t kw = kw0; kw < kw1; ++kw, dst += LEP_GEMM_MR) {
                            const __m512 v = _mm512_maskz_loadu_ps(run[0].even[kw], row[0] + run[0].col[kw]);
                            _mm256_storeu_ps(dst, _mm512_castps512_ps256(_mm512_permutexvar_ps(even, v)));
                        }
                    }
                    k += kw1 - kw0;
                    continue;
                }
                for (int64_t kw = kw0; kw < kw1; ++kw, ++k) {
                    __m256 col = _mm256_setzero_ps();
                    for (int r = 0; r < nrun; ++r) {
                        if (!row[r]) continue;
                        const float* src = row[r] + run[r].col[kw];
                        if (g->sw == 1) {
                            col = _mm256_mask_loadu_ps(col, run[r].lanes[kw], src);
                        } else {
                            const __m512 v = _mm512_maskz_loadu_ps(run[r].even[kw], src);
                            col = _mm256_or_ps(col, _mm512_castps512_ps256(_mm512_permutexvar_ps(even, v)));
                        }
                    }
                    _mm256_mask_storeu_ps(Ap + (k - k0) * mr, (__mmask8)((1u << mr) - 1u), col);
                }
            }
            Ap += mr * kc;
            continue;
        }
#endif
        for (int i = 0; i < mr; ++i) {
            int64_t hb, wb;
            const float* xi;
            lep_conv_window_at(a, a->row0 + i0 + i, &hb, &wb, &xi);
            xi += a->c0 * (HW - 1);  /* the group's first channel plane (lep_conv_window_at counts channels last) */
            int64_t ci = c_k0, khi = kh_k0, kwi = kw_k0;
            for (int64_t k = k0; k < k1; ++k) {
                const int64_t h = hb + khi * g->dh, w = wb + kwi * g->dw;
                Ap[(k - k0) * mr + i] = h >= 0 && h < H && w >= 0 && w < W ? xi[ci * HW + h * W + w] : 0.0f;
                if (++kwi == KW) {
                    kwi = 0;
                    if (++khi == KH) khi = 0, ++ci;
                }
            }
        }
        Ap += mr * kc;
    }
}

/* Per-thread buffer of lep_conv_view_a: the runs of rows that touch the padding, copied with their zeros, and
 * after them a run of zeros, for rows whose kernel row lies outside the input. */
static __thread float* lep_conv_vbuf;
static __thread int64_t lep_conv_vcap;

static float* lep_conv_view_buffer(int64_t copies, int64_t zeros) {
    if (copies + zeros > lep_conv_vcap) {
        free(lep_conv_vbuf);
        lep_conv_vbuf = NULL;
        if (posix_memalign((void**)&lep_conv_vbuf, 64, (size_t)(copies + zeros) * sizeof(float)) != 0) abort();
        lep_conv_vcap = copies + zeros;
    }
    memset(lep_conv_vbuf + copies, 0, (size_t)zeros * sizeof(float));
    return lep_conv_vbuf;
}

/* The rows [i0, i0 + mr) of A, columns [k0, k0 + kc), read in place (lep_view_a_fn): one segment per kernel
 * row, each output pixel's run of KW * CG input floats (contiguous when the width dilation is 1 and the group
 * takes every channel). A run partly in the padding is copied with its zeros into a per-thread buffer; a
 * kernel row outside the input reads zeros, and is left out when it is outside for every row of the strip. */
static int lep_conv_view_a(const lep_a_rows* rows, int64_t i0, int mr, int64_t k0, int64_t kc, lep_a_seg* seg) {
    const lep_conv_rows* a = (const lep_conv_rows*)rows->ctx;
    const lep_window* g = a->g;
    const int64_t C = g->C, CG = a->CG, KW = g->KW, RW = KW * CG, k1 = k0 + kc;
    const int64_t kh0 = k0 / RW, kh1 = (k1 - 1) / RW + 1;  /* kernel rows in the block */
    if (g->dw != 1 || CG != C || kh1 - kh0 > LEP_A_SEGS) return 0;
    if (!seg) return (int)(kh1 - kh0);
    float* buf = NULL;
    const float* zeros = NULL;
    int64_t hb[LEP_GEMM_MR], wb[LEP_GEMM_MR];
    const float* xn[LEP_GEMM_MR];
    for (int i = 0; i < mr; ++i) lep_conv_window_at(a, a->row0 + i0 + i, hb + i, wb + i, xn + i);
    int nseg = 0;
    for (int64_t kh = kh0; kh < kh1; ++kh) {
        const int64_t s0 = kh * RW > k0 ? kh * RW : k0, s1 = (kh + 1) * RW < k1 ? (kh + 1) * RW : k1;
        const int64_t t0 = s0 - kh * RW, len = s1 - s0;  /* the segment: run floats [t0, t0 + len) */
        lep_a_seg* sg = seg + nseg;
        int outside = 0;
        for (int i = 0; i < mr; ++i) {
            const int64_t h = hb[i] + kh * g->dh;
            const int64_t lo = wb[i] < 0 ? -wb[i] : 0, hi = g->W - wb[i] < KW ? g->W - wb[i] : KW;
            if (h < 0 || h >= g->H || hi <= lo) {
                if (!zeros) {
                    buf = lep_conv_view_buffer(mr * kc, kc);
                    zeros = buf + mr * kc;
                }
                sg->row[i] = zeros;
                ++outside;
                continue;
            }
            const float* run = xn[i] + (h * g->W + wb[i] + lo) * C;  /* the run's first float inside */
            if (lo == 0 && hi == KW) {
                sg->row[i] = run + t0;
                continue;
            }
            if (!buf) {
                buf = lep_conv_view_buffer(mr * kc, kc);
                zeros = buf + mr * kc;
            }
            float* dst = buf + (s0 - k0) * mr + i * len;  /* floats [t0, t0 + len) of the run with its zeros */
            const int64_t v0 = lo * C, v1 = hi * C;
            for (int64_t t = t0; t < t0 + len; ++t) dst[t - t0] = t >= v0 && t < v1 ? run[t - v0] : 0.0f;
            sg->row[i] = dst;
        }
        if (outside == mr) continue;  /* zeros for every row: nothing to add */
        sg->k = s0 - k0;
        sg->len = len;
        ++nseg;
    }
    if (nseg == 0) {  /* the whole block in the padding: one segment of zeros keeps the kernel's contract */
        seg->k = 0;
        seg->len = 0;
        for (int i = 0; i < mr; ++i) seg->row[i] = a->x;
        nseg = 1;
    }
    return nseg;
}

/* What a conv hands to the GEMM as its epilogue context: the GEMM computes the output block that starts at
 * row row0 and column col0 (a block of pixels, a group's channels); on each finished tile the epilogue runs
 * the kernel's fused ops `ep`, which take coordinates in the whole output. */
typedef struct {
    lep_epilogue ep;
    const void* ctx;
    int64_t row0, col0;
} lep_conv_tile;

static void lep_conv_epilogue(const void* ctx, float* C, int64_t ldc, int64_t i0, int64_t i1, int64_t j0,
                              int64_t j1) {
    const lep_conv_tile* t = (const lep_conv_tile*)ctx;
    t->ep(t->ctx, C - t->row0 * ldc - t->col0, ldc, i0 + t->row0, i1 + t->row0, j0 + t->col0, j1 + t->col0);
}

#if defined(__AVX512F__) && LEP_GEMM_MR == 8
/* A tile of LEP_GEMM_MR = 8 output pixels of one output row by a panel of 32 columns (nv vectors of 16) from a
 * channels-first input read in place, as a direct convolution does: pixel i's tap (c, kh, kw) at
 * x[c * HW + kh * dh * W + i * SW + kw], every one inside the input (x: the first pixel's window at its first
 * kernel row inside, kh0; rows [kh0, kh1) inside), B the panel (lep_conv_pack_a_cf's column order). */
static inline __attribute__((always_inline)) void lep_conv_cf_tile(
        const int SW, const int nv, const float* x, const lep_window* g, int64_t CG, int64_t kh0, int64_t kh1,
        const float* b, float* c, int64_t ldc, int64_t ncols, const float* bias, const float* clamp) {
    const int64_t HW = g->H * g->W, KH = g->KH, KW = g->KW, rstep = g->dh * g->W;
    __m512 c0[8], c1[8];
    for (int i = 0; i < 8; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int64_t ch = 0; ch < CG; ++ch)
        for (int64_t kh = kh0; kh < kh1; ++kh) {
            const float* xr = x + ch * HW + (kh - kh0) * rstep;
            const float* bk = b + (ch * KH + kh) * KW * LEP_GEMM_NR;
            for (int64_t kw = 0; kw < KW; ++kw, bk += LEP_GEMM_NR, ++xr) {
                const __m512 b0 = _mm512_loadu_ps(bk), b1 = nv > 1 ? _mm512_loadu_ps(bk + 16) : b0;
                #pragma GCC unroll 8
                for (int i = 0; i < 8; ++i) {
                    const __m512 ai = _mm512_set1_ps(xr[i * SW]);
                    c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
                    if (nv > 1) c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
                }
            }
        }
    lep_ukr_store(8, c0, c1, c, ldc, ncols, 1, bias, clamp);
}

static void lep_conv_cf_strip(const float* x, const lep_window* g, int64_t CG, int64_t kh0, int64_t kh1,
                              const float* Bp, int64_t N, int64_t K, float* c, int64_t ldc, const float* bias,
                              const float* clamp) {
    for (int64_t j = 0; j < N; j += LEP_GEMM_NR) {
        const float* b = Bp + j * K;
        const float* bj = bias ? bias + j : NULL;
        if (g->sw == 1 && N - j > 16) lep_conv_cf_tile(1, 2, x, g, CG, kh0, kh1, b, c + j, ldc, N - j, bj, clamp);
        else if (g->sw == 1) lep_conv_cf_tile(1, 1, x, g, CG, kh0, kh1, b, c + j, ldc, N - j, bj, clamp);
        else if (N - j > 16) lep_conv_cf_tile(2, 2, x, g, CG, kh0, kh1, b, c + j, ldc, N - j, bj, clamp);
        else lep_conv_cf_tile(2, 1, x, g, CG, kh0, kh1, b, c + j, ldc, N - j, bj, clamp);
    }
}
#endif

/* Output pixels [a->row0, a->row0 + rows) of a conv over a channels-first input (columns of the group that
 * starts at column col0 of the output; C at the first pixel): C = A @ B (+ bias, clamped), then ep, which
 * takes whole-output coordinates, on each finished strip. On AVX-512, 8 pixels of one output row whose taps
 * all lie inside along the width (stride 1 or 2, no width dilation) are computed directly from the input
 * (lep_conv_cf_tile); other pixels go through the packed GEMM (lep_conv_pack_a_cf), a strip at a time. */
static void lep_conv_cf_rows(const lep_conv_rows* a, int64_t rows, const float* Bp, int64_t N, int64_t K,
                             const float* bias, const float* clamp, float* C, int64_t ldc, lep_epilogue ep,
                             const void* ep_ctx, int64_t col0) {
    const lep_window* g = a->g;
    int64_t r = 0;
    while (r < rows) {
        const int64_t p = a->row0 + r, ow = p % g->OW;
        int64_t s = rows - r;  /* pixels of this step */
#if defined(__AVX512F__) && LEP_GEMM_MR == 8
        const int64_t wb = ow * g->sw - g->pw;
        if (s >= 8 && ow + 8 <= g->OW && g->sw <= 2 && g->dw == 1 && wb >= 0 && wb + 7 * g->sw + g->KW - 1 < g->W) {
            const int64_t oh = p / g->OW % g->OH, hb = oh * g->sh - g->ph;
            int64_t kh0 = 0, kh1 = g->KH;  /* kernel rows inside the input */
            while (kh0 < kh1 && hb + kh0 * g->dh < 0) ++kh0;
            while (kh1 > kh0 && hb + (kh1 - 1) * g->dh >= g->H) --kh1;
            const float* x = a->x + (p / (g->OH * g->OW) * g->C + a->c0) * g->H * g->W;
            if (kh1 > kh0) x += (hb + kh0 * g->dh) * g->W + wb;
            lep_conv_cf_strip(x, g, a->CG, kh0, kh1, Bp, N, K, C + r * ldc, ldc, bias, clamp);
            if (ep) ep(ep_ctx, C - a->row0 * ldc - col0, ldc, p, p + 8, col0, col0 + N);
            r += 8;
            continue;
        }
        s = s < 8 ? s : 8;
        if (ow + s > g->OW) s = g->OW - ow;  /* up to the end of the output row: the next strip may be direct */
#endif
        const lep_conv_rows strip = {a->x, g, a->c0, a->CG, p};
        const lep_a_rows A = {NULL, 0, lep_conv_pack_a_cf, NULL, &strip};
        const lep_conv_tile tile = {ep, ep_ctx, p, col0};
        lep_gemm_a(s, N, K, &A, Bp, bias, clamp, C + r * ldc, ldc, ep ? lep_conv_epilogue : NULL, &tile);
        r += s;
    }
}

/* Output pixels of one task of a convolution that splits its pixels over the threads: about `target`, and
 * a multiple of the thread count in tasks, so that the threads finish together. */
static int64_t lep_conv_task_pixels(int64_t P, int64_t target) {
    const int64_t nt = omp_get_max_threads();
    int64_t tasks = (P + target - 1) / target;
    tasks = (tasks + nt - 1) / nt * nt;
    return (P + tasks - 1) / tasks;
}

/* Output pixels of one task of a grouped convolution, whose tasks are (a block of pixels, a group): blocks of
 * about `target` pixels, as many as make the task count a multiple of the thread count. */
static int64_t lep_conv_group_task_pixels(int64_t P, int64_t G, int64_t target) {
    const int64_t nt = omp_get_max_threads();
    int64_t a = G, b = nt;
    while (b) {  /* a = gcd(G, nt) */
        const int64_t t = a % b;
        a = b;
        b = t;
    }
    const int64_t step = nt / a;  /* G * blocks is a multiple of nt when blocks is one of step */
    int64_t blocks = (P + target - 1) / target;
    blocks = (blocks + step - 1) / step * step;
    return (P + blocks - 1) / blocks;
}

/* A vector of the target's widest kind, read and written at any address: 16 floats on AVX-512, else 8 (one ymm
 * on AVX2). The depthwise loops keep up to 8 accumulators of it in registers. */
#if defined(__AVX512F__)
#define LEP_DW_LANES 16
#else
#define LEP_DW_LANES 8
#endif
typedef float lep_vdw __attribute__((vector_size(LEP_DW_LANES * 4), aligned(4)));
typedef int32_t lep_vdw_bits __attribute__((vector_size(LEP_DW_LANES * 4)));
#define LEP_DW_CHUNK (8 * LEP_DW_LANES) /* channels of one pass over a row: its windows' input stays in L1 */

/* v clamped to [clamp[0], clamp[1]] (NaN stays NaN: it compares false). */
static inline lep_vdw lep_vdw_clamp(lep_vdw v, const float* clamp) {
    const lep_vdw lo = (lep_vdw){0} + clamp[0], hi = (lep_vdw){0} + clamp[1];
    lep_vdw_bits m = v < lo;
    v = (lep_vdw)(((lep_vdw_bits)lo & m) | ((lep_vdw_bits)v & ~m));
    m = v > hi;
    return (lep_vdw)(((lep_vdw_bits)hi & m) | ((lep_vdw_bits)v & ~m));
}

/* np neighbouring output pixels of one row, one vector of channels, every tap inside the input: x at the first
 * pixel's first tap (kernel row kh0, column 0), w at that tap's filter, nkh kernel rows from kh0, bias and y at
 * the first pixel's channels. KW and SW, when not 0, are the window's width and stride as constants (width
 * dilation 1), so that the taps unroll; one accumulator a pixel, each tap one multiply-add a pixel. */
static inline __attribute__((always_inline)) void lep_depthwise_pixels(
        float* y, const float* x, const float* w, const float* bias, const float* clamp, const lep_window* g,
        int64_t nkh, const int np, const int KW, const int SW) {
    const int64_t C = g->C, kw_n = KW ? KW : g->KW, step = (SW ? SW : g->sw) * C, tap = (KW ? 1 : g->dw) * C;
    const int64_t xrow = g->dh * g->W * C, wrow = g->KW * C;
    const lep_vdw b = bias ? *(const lep_vdw*)bias : (lep_vdw){0};
    lep_vdw acc[8];
    for (int p = 0; p < np; ++p) acc[p] = b;
    for (int64_t kh = 0; kh < nkh; ++kh, x += xrow, w += wrow) {
        #pragma GCC unroll 8
        for (int64_t kw = 0; kw < kw_n; ++kw) {
            const lep_vdw wv = *(const lep_vdw*)(w + kw * C);
            #pragma GCC unroll 8
            for (int p = 0; p < np; ++p) acc[p] += *(const lep_vdw*)(x + kw * tap + p * step) * wv;
        }
    }
    for (int p = 0; p < np; ++p) *(lep_vdw*)(y + p * C) = clamp ? lep_vdw_clamp(acc[p], clamp) : acc[p];
}

/* One output pixel, nv vectors of channels, the taps of nkh kernel rows and kernel columns [kw0, kw1) (those
 * inside the input): x at the tap (kh0, kw0), w at its filter, bias and y at the first channel. */
static inline __attribute__((always_inline)) void lep_depthwise_pixel_vectors(
        float* y, const float* x, const float* w, const float* bias, const float* clamp, const lep_window* g,
        int64_t nkh, int64_t kw0, int64_t kw1, const int nv) {
    const int64_t C = g->C, tap = g->dw * C, xrow = g->dh * g->W * C, wrow = g->KW * C;
    lep_vdw acc[8];
    for (int v = 0; v < nv; ++v) acc[v] = bias ? *(const lep_vdw*)(bias + v * LEP_DW_LANES) : (lep_vdw){0};
    for (int64_t kh = 0; kh < nkh; ++kh, x += xrow, w += wrow)
        for (int64_t kw = 0; kw < kw1 - kw0; ++kw)
            #pragma GCC unroll 8
            for (int v = 0; v < nv; ++v)
                acc[v] += *(const lep_vdw*)(x + kw * tap + v * LEP_DW_LANES) *
                          *(const lep_vdw*)(w + kw * C + v * LEP_DW_LANES);
    for (int v = 0; v < nv; ++v)
        *(lep_vdw*)(y + v * LEP_DW_LANES) = clamp ? lep_vdw_clamp(acc[v], clamp) : acc[v];
}

/* Output pixel (n, oh, ow), channels [c0, c1) in whole vectors, any window: the taps outside the input are left
 * out of the loops (kernel rows [kh0, kh1) lie inside along the height). */
static void lep_depthwise_pixel(float* y, const float* x, const float* w, const float* bias, const float* clamp,
                                const lep_window* g, int64_t n, int64_t oh, int64_t ow, int64_t kh0, int64_t kh1,
                                int64_t c0, int64_t c1) {
    const int64_t C = g->C;
    int64_t kw0, kw1;  /* the kernel columns inside the input */
    lep_taps_within(ow, g->sw, g->pw, g->dw, g->KW, 0, g->W, &kw0, &kw1);
    const int64_t h = oh * g->sh - g->ph + kh0 * g->dh, iw = ow * g->sw - g->pw + kw0 * g->dw;
    const float* xp = x + ((n * g->H + h) * g->W + iw) * C;
    const float* wp = w + (kh0 * g->KW + kw0) * C;
    float* yp = y + ((n * g->OH + oh) * g->OW + ow) * C;
    int64_t c = c0;
    for (; c + 8 * LEP_DW_LANES <= c1; c += 8 * LEP_DW_LANES)
        lep_depthwise_pixel_vectors(yp + c, xp + c, wp + c, bias ? bias + c : NULL, clamp, g, kh1 - kh0, kw0, kw1, 8);
    for (; c < c1; c += LEP_DW_LANES)
        lep_depthwise_pixel_vectors(yp + c, xp + c, wp + c, bias ? bias + c : NULL, clamp, g, kh1 - kh0, kw0, kw1, 1);
}

/* Output pixel (n, oh, ow), channels [c0, c1) one at a time (the channels past the last whole vector), any
 * window (taps outside the input skipped). */
static void lep_depthwise_channels(float* y, const float* x, const float* w, const float* bias, const float* clamp,
                                   const lep_window* g, int64_t n, int64_t oh, int64_t ow, int64_t c0, int64_t c1) {
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
            for (int64_t c = c0; c < c1; ++c) yp[c] += xp[c] * wp[c];
        }
    }
    if (clamp)
        for (int64_t c = c0; c < c1; ++c) yp[c] = lep_gemm_clamp(yp[c], clamp);
}

/* Output row (n, oh), channels [c0, c1) in whole vectors: the pixels [lo, hi), whose windows lie inside the
 * input along the width, 8 and 4 at a time (KW, SW: see lep_depthwise_pixels), the others one at a time with
 * the taps inside; kernel rows [kh0, kh1) lie inside along the height. */
static inline __attribute__((always_inline)) void lep_depthwise_row(
        float* y, const float* x, const float* w, const float* bias, const float* clamp, const lep_window* g,
        int64_t n, int64_t oh, int64_t kh0, int64_t kh1, int64_t lo, int64_t hi, int64_t c0, int64_t c1,
        const int KW, const int SW) {
    const int64_t C = g->C, nkh = kh1 - kh0;
    const int64_t xrow = (n * g->H + oh * g->sh - g->ph + kh0 * g->dh) * g->W - g->pw;  /* column 0 of kh0's row */
    const float* wr = w + kh0 * g->KW * C;
    float* yr = y + (n * g->OH + oh) * g->OW * C;
    for (int64_t ow = 0; ow < lo; ++ow) lep_depthwise_pixel(y, x, w, bias, clamp, g, n, oh, ow, kh0, kh1, c0, c1);
    int64_t ow = lo;
    for (; ow + 8 <= hi; ow += 8)
        for (int64_t c = c0; c < c1; c += LEP_DW_LANES)
            lep_depthwise_pixels(yr + ow * C + c, x + (xrow + ow * g->sw) * C + c, wr + c, bias ? bias + c : NULL,
                                 clamp, g, nkh, 8, KW, SW);
    if (ow + 4 <= hi) {
        for (int64_t c = c0; c < c1; c += LEP_DW_LANES)
            lep_depthwise_pixels(yr + ow * C + c, x + (xrow + ow * g->sw) * C + c, wr + c, bias ? bias + c : NULL,
                                 clamp, g, nkh, 4, KW, SW);
        ow += 4;
    }
    for (; ow < g->OW; ++ow) lep_depthwise_pixel(y, x, w, bias, clamp, g, n, oh, ow, kh0, kh1, c0, c1);
}

/* Output row r (r = n * OH + oh), channels [c0, c1) (c0 a multiple of LEP_DW_LANES) of a depthwise convolution:
 * channel c of the output is channel c of the input through its own filter w[kh, kw, 0, c], plus bias[c] when
 * bias is not NULL, clamped to [clamp[0], clamp[1]] when clamp is not NULL. Vectors of channels, up to
 * LEP_DW_CHUNK a pass over the row; pixels whose windows lie inside the input 8 at a time, without bounds
 * checks (3-, 5- and 7-wide windows of stride 1 or 2 with their taps unrolled), the pixels at the edges with
 * their taps inside, and the channels past the last whole vector one at a time. */
static void lep_depthwise_nhwc(float* y, const float* x, const float* w, const float* bias, const float* clamp,
                               const lep_window* g, int64_t r, int64_t c0, int64_t c1) {
    const int64_t C = g->C, vc = C - C % LEP_DW_LANES, n = r / g->OH, oh = r % g->OH;
    /* inside along the width: ow * sw - pw >= 0 and ow * sw - pw + (KW - 1) * dw < W */
    int64_t lo = (g->pw + g->sw - 1) / g->sw, hi = g->W - 1 - (g->KW - 1) * g->dw + g->pw;
    hi = hi < 0 ? 0 : hi / g->sw + 1;
    hi = hi < g->OW ? hi : g->OW;
    lo = lo < hi ? lo : hi;
    const int unrolled = g->dw == 1 && g->sw <= 2 && (g->KW == 3 || g->KW == 5 || g->KW == 7);
    const int shape = unrolled ? (int)(g->KW * 2 + g->sw) : 0;
    int64_t kh0, kh1;  /* kernel rows inside the input */
    lep_taps_within(oh, g->sh, g->ph, g->dh, g->KH, 0, g->H, &kh0, &kh1);
    const int64_t v1 = c1 < vc ? c1 : vc;
    for (int64_t a = c0; a < v1; a += LEP_DW_CHUNK) {
        const int64_t b = a + LEP_DW_CHUNK < v1 ? a + LEP_DW_CHUNK : v1;
#define LEP_DW_ROW(KW, SW) lep_depthwise_row(y, x, w, bias, clamp, g, n, oh, kh0, kh1, lo, hi, a, b, KW, SW)
        switch (shape) {
        case 7: LEP_DW_ROW(3, 1); break;
        case 8: LEP_DW_ROW(3, 2); break;
        case 11: LEP_DW_ROW(5, 1); break;
        case 12: LEP_DW_ROW(5, 2); break;
        case 15: LEP_DW_ROW(7, 1); break;
        case 16: LEP_DW_ROW(7, 2); break;
        default: LEP_DW_ROW(0, 0);
        }
#undef LEP_DW_ROW
    }
    const int64_t t0 = c0 > vc ? c0 : vc;
    if (t0 < c1)
        for (int64_t ow = 0; ow < g->OW; ++ow) lep_depthwise_channels(y, x, w, bias, clamp, g, n, oh, ow, t0, c1);
}
