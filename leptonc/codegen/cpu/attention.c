/* leptonc cpu attention: softmax(epilogue(Q K^T)) V for one batch index and a chunk of query rows at a
 * time, with the scores and probabilities held in a per-thread tile that never reaches the model's memory.
 *
 * A generated attention kernel runs, for each task (batch index, chunk of up to LEP_ATT_TM query rows):
 *
 *   lep_att_load_q      copy the chunk's query rows into the tile (any strides)
 *   lep_att_begin       running max m = -inf, running sum l = 0, output accumulator o = 0
 *   per block of up to LEP_ATT_BN keys:
 *     lep_att_pack      K^T of the block into panels of LEP_ATT_NV vectors (16 x 16 transposes in
 *                       registers when K's rows are contiguous); V too when its rows are not vectors
 *     per block of up to LEP_ATT_BM query rows:
 *       lep_att_scores  s = q k^T (register tiles of LEP_ATT_RB rows x LEP_ATT_NV vectors)
 *       (generated)     the scores epilogue the plan fused: scale, additive mask, causal where...
 *       lep_att_update  online softmax: m' = max(m, rowmax s), p = exp(s - m'), l = l exp(m - m') + sum p,
 *                       o = o exp(m - m') + p v
 *   (generated)         o / l, the output epilogue, stored through the output's strides
 *
 * A row whose scores are all -inf (fully masked) ends with l = 0 and o = 0: its output is 0/0 = NaN,
 * as the softmax of the reference gives. NaN or +inf scores make their row NaN the same way.
 *
 * Vectors are AVX-512 or AVX2 + FMA where the compiler targets them, else plain floats.
 */
#if defined(__AVX512F__)
#include <immintrin.h>
#define LEP_AV 16
#define LEP_ATT_NV 4 /* vectors of a register tile's row */
typedef __m512 lep_av;
#define lep_av_load(p) _mm512_loadu_ps(p)
#define lep_av_store(p, x) _mm512_storeu_ps((p), (x))
#define lep_av_set1(x) _mm512_set1_ps(x)
#define lep_av_zero() _mm512_setzero_ps()
#define lep_av_fma(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define lep_av_pin(x) __asm__("" : "+v"(x)) /* keeps a loaded vector in its register: one load, many FMAs */
#define lep_av_add(a, b) _mm512_add_ps((a), (b))
#define lep_av_mul(a, b) _mm512_mul_ps((a), (b))
#define lep_av_sub(a, b) _mm512_sub_ps((a), (b))
#define lep_av_max(a, b) _mm512_max_ps((a), (b))
#define lep_av_sum(x) _mm512_reduce_add_ps(x)
#define lep_av_hmax(x) _mm512_reduce_max_ps(x)
/* 2^n by the exponent: exact 0 below the range, so that exp(-inf) is 0 */
#define lep_av_scale(p, n) _mm512_scalef_ps((p), (n))
#define lep_av_round(x) _mm512_roundscale_ps((x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LEP_AV 8
#define LEP_ATT_NV 2
typedef __m256 lep_av;
#define lep_av_load(p) _mm256_loadu_ps(p)
#define lep_av_store(p, x) _mm256_storeu_ps((p), (x))
#define lep_av_set1(x) _mm256_set1_ps(x)
#define lep_av_zero() _mm256_setzero_ps()
#define lep_av_fma(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define lep_av_pin(x) __asm__("" : "+v"(x))
#define lep_av_add(a, b) _mm256_add_ps((a), (b))
#define lep_av_mul(a, b) _mm256_mul_ps((a), (b))
#define lep_av_sub(a, b) _mm256_sub_ps((a), (b))
#define lep_av_max(a, b) _mm256_max_ps((a), (b))
static inline float lep_av_sum(__m256 x) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}
static inline float lep_av_hmax(__m256 x) {
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
}
static inline __m256 lep_av_scale(__m256 p, __m256 n) { /* p 2^n for n in [-150, 128]; 0 below -126 */
    const __m256 lo = _mm256_max_ps(n, _mm256_set1_ps(-126.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(lo), _mm256_set1_epi32(127)), 23);
    const __m256 r = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_and_ps(r, _mm256_cmp_ps(n, _mm256_set1_ps(-126.0f), _CMP_GE_OQ));
}
#define lep_av_round(x) _mm256_round_ps((x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#else
#define LEP_AV 1
#define LEP_ATT_NV 4
typedef float lep_av;
#define lep_av_load(p) (*(p))
#define lep_av_store(p, x) (*(p) = (x))
#define lep_av_set1(x) (x)
#define lep_av_zero() 0.0f
#define lep_av_fma(a, b, c) ((a) * (b) + (c))
#define lep_av_pin(x) (void)(x)
#define lep_av_add(a, b) ((a) + (b))
#define lep_av_mul(a, b) ((a) * (b))
#define lep_av_sub(a, b) ((a) - (b))
#define lep_av_max(a, b) ((a) > (b) ? (a) : (b))
#define lep_av_sum(x) (x)
#define lep_av_hmax(x) (x)
#endif

#if LEP_AV > 1
/* exp(x) for x <= 0 (scores minus their row max): 2^n e^r with n = round(x / ln 2), |r| <= ln(2) / 2, e^r
   by the Cephes polynomial (1 ulp); x below -110 (and -inf) gives 0, NaN gives NaN. */
static inline lep_av lep_av_exp(lep_av x) {
    x = lep_av_max(lep_av_set1(-110.0f), x); /* NaN stays: max returns its second operand on NaN */
    const lep_av n = lep_av_round(lep_av_mul(x, lep_av_set1(1.44269504088896341f)));
    lep_av r = lep_av_fma(n, lep_av_set1(-0.693359375f), x);
    r = lep_av_fma(n, lep_av_set1(2.12194440e-4f), r);
    lep_av p = lep_av_set1(1.9875691500e-4f);
    p = lep_av_fma(p, r, lep_av_set1(1.3981999507e-3f));
    p = lep_av_fma(p, r, lep_av_set1(8.3334519073e-3f));
    p = lep_av_fma(p, r, lep_av_set1(4.1665795894e-2f));
    p = lep_av_fma(p, r, lep_av_set1(1.6666665459e-1f));
    p = lep_av_fma(p, r, lep_av_set1(5.0000001201e-1f));
    p = lep_av_fma(p, lep_av_mul(r, r), lep_av_add(r, lep_av_set1(1.0f)));
    return lep_av_scale(p, n);
}
#else
#define lep_av_exp(x) expf(x)
#endif

#define LEP_ATT_TM 256 /* query rows of one task, at most */
#define LEP_ATT_BM 64  /* query rows of one scores tile */
#define LEP_ATT_BMC 16 /* query rows of one scores tile under a causal mask: its keys end at its last row */
#define LEP_ATT_BN 256 /* keys of one block */
#define LEP_ATT_RB 4   /* query rows of a register tile */
#define LEP_ATT_PW (LEP_ATT_NV * LEP_AV) /* keys of a K^T panel */
#define LEP_ATT_AINLINE static inline __attribute__((always_inline))

typedef struct {
    int64_t d, e;         /* query/key width, value width */
    int64_t lds, ldo;     /* row lengths of the scores and of the accumulator */
    int64_t keys;         /* keys of the packed block */
    const float* vb;      /* the block's V rows (the source, or the packed copy in v) */
    int64_t ldv;          /* their row stride */
    float *q, *kt, *v, *s, *o, *m, *l;
} lep_att_tile;

static inline int64_t lep_att_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* Query rows per task for nb batch indices of m rows: enough tasks for the threads, few K/V packs. */
static inline int64_t lep_att_chunk(int64_t nb, int64_t m) {
    const int64_t want = 4 * (int64_t)omp_get_max_threads();
    int64_t chunks = (want + nb - 1) / (nb > 0 ? nb : 1);
    const int64_t most = (m + 15) / 16, least = (m + LEP_ATT_TM - 1) / LEP_ATT_TM;
    if (chunks > most) chunks = most;
    if (chunks < least) chunks = least;
    if (chunks < 1) chunks = 1;
    return m > 0 ? (m + chunks - 1) / chunks : 1;
}

/* The calling thread's tile for widths d and e; the memory is kept for the thread's next call. */
static void lep_att_tile_init(lep_att_tile* t, int64_t d, int64_t e) {
    static __thread float* mem = NULL;
    static __thread size_t cap = 0;
    const int64_t rows = lep_att_up(LEP_ATT_TM, LEP_ATT_RB), cols = lep_att_up(LEP_ATT_BN, LEP_ATT_PW);
    t->d = d;
    t->e = e;
    t->lds = cols;
    t->ldo = lep_att_up(e > 0 ? e : 1, LEP_AV);
    const size_t n[7] = {(size_t)(rows * d), (size_t)(d * cols), (size_t)(cols * t->ldo),
                         (size_t)(lep_att_up(LEP_ATT_BM, LEP_ATT_RB) * cols), (size_t)(rows * t->ldo), (size_t)rows,
                         (size_t)rows};
    size_t total = 0;
    for (int i = 0; i < 7; ++i) total += (n[i] + 15) / 16 * 16; /* each part 64-byte aligned */
    if (total > cap) {
        free(mem);
        mem = (float*)lep_scratch(total * sizeof(float));
        cap = total;
    }
    float** parts[7] = {&t->q, &t->kt, &t->v, &t->s, &t->o, &t->m, &t->l};
    float* p = mem;
    for (int i = 0; i < 7; ++i) {
        *parts[i] = p;
        p += (n[i] + 15) / 16 * 16;
    }
}

/* The chunk's rows of Q (element strides sr, sc), padded with zero rows to a whole register tile. */
static void lep_att_load_q(lep_att_tile* t, const float* q, int64_t sr, int64_t sc, int64_t rows) {
    const int64_t d = t->d;
    for (int64_t r = 0; r < rows; ++r) {
        float* dst = t->q + r * d;
        const float* src = q + r * sr;
        if (sc == 1) {
            memcpy(dst, src, (size_t)d * sizeof(float));
        } else {
            for (int64_t c = 0; c < d; ++c) dst[c] = src[c * sc];
        }
    }
    for (int64_t r = rows; r < lep_att_up(rows, LEP_ATT_RB); ++r) memset(t->q + r * d, 0, (size_t)d * sizeof(float));
}

static void lep_att_begin(lep_att_tile* t, int64_t rows) {
    const int64_t padded = lep_att_up(rows, LEP_ATT_RB);
    for (int64_t r = 0; r < padded; ++r) {
        t->m[r] = -INFINITY;
        t->l[r] = 0.0f;
    }
    memset(t->o, 0, (size_t)(padded * t->ldo) * sizeof(float));
}

/* dst[c * ds + r] = src[r * ss + c] for an LEP_AV x LEP_AV block */
LEP_ATT_AINLINE void lep_att_transpose(const float* src, int64_t ss, float* dst, int64_t ds) {
#if LEP_AV == 16
    __m512 r[16], t[16];
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * ss);
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; ++i) { /* r[4i + q], 128-bit lane k: rows 4i..4i+3 of column 4k + q */
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 2]), e = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, e));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, e));
    }
    for (int q = 0; q < 4; ++q) {
        const __m512 u0 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0x44), u1 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0xEE);
        const __m512 u2 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0x44);
        const __m512 u3 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0xEE);
        _mm512_storeu_ps(dst + q * ds, _mm512_shuffle_f32x4(u0, u2, 0x88));
        _mm512_storeu_ps(dst + (4 + q) * ds, _mm512_shuffle_f32x4(u0, u2, 0xDD));
        _mm512_storeu_ps(dst + (8 + q) * ds, _mm512_shuffle_f32x4(u1, u3, 0x88));
        _mm512_storeu_ps(dst + (12 + q) * ds, _mm512_shuffle_f32x4(u1, u3, 0xDD));
    }
#elif LEP_AV == 8
    __m256 r[8], t[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ss);
    for (int i = 0; i < 4; ++i) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; ++i) { /* r[4i + q], 128-bit lane k: rows 4i..4i+3 of column 4k + q */
        r[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int q = 0; q < 4; ++q) {
        _mm256_storeu_ps(dst + q * ds, _mm256_permute2f128_ps(r[q], r[4 + q], 0x20));
        _mm256_storeu_ps(dst + (4 + q) * ds, _mm256_permute2f128_ps(r[q], r[4 + q], 0x31));
    }
#else
    dst[0] = src[0];
    (void)ss;
    (void)ds;
#endif
}

/* K^T of `keys` keys (element (c, j) at kt[c * kd + j * kn]) into panels of LEP_ATT_PW keys: panel p
   holds keys [p PW, p PW + w) as d rows of w (w = PW, or the vectors left in the last panel), zero past
   `keys`. V (element (j, c) at v[j * vn + c * ve]) is read in place when its rows are whole vectors,
   else copied with zero padding. */
static void lep_att_pack(lep_att_tile* t, const float* kt, int64_t kd, int64_t kn, const float* v, int64_t vn,
                         int64_t ve, int64_t keys) {
    const int64_t d = t->d, e = t->e, cols = lep_att_up(keys, LEP_AV);
    t->keys = keys;
    for (int64_t p0 = 0; p0 < cols; p0 += LEP_ATT_PW) {
        const int64_t w = cols - p0 < LEP_ATT_PW ? cols - p0 : LEP_ATT_PW;
        const int64_t n = keys - p0 < w ? keys - p0 : w; /* real keys in the panel */
        float* panel = t->kt + p0 * d;
        int64_t j = 0;
        if (kd == 1 && LEP_AV > 1) {
            for (; j + LEP_AV <= n; j += LEP_AV) {
                int64_t c = 0;
                for (; c + LEP_AV <= d; c += LEP_AV) lep_att_transpose(kt + (p0 + j) * kn + c, kn, panel + c * w + j, w);
                for (; c < d; ++c)
                    for (int64_t jj = j; jj < j + LEP_AV; ++jj) panel[c * w + jj] = kt[(p0 + jj) * kn + c];
            }
        }
        for (int64_t c = 0; c < d; ++c) {
            float* dst = panel + c * w;
            const float* src = kt + c * kd + p0 * kn;
            if (kn == 1) {
                memcpy(dst + j, src + j, (size_t)(n - j) * sizeof(float));
            } else {
                for (int64_t jj = j; jj < n; ++jj) dst[jj] = src[jj * kn];
            }
            for (int64_t jj = n; jj < w; ++jj) dst[jj] = 0.0f;
        }
    }
    if (ve == 1 && e > 0 && e % LEP_AV == 0) {
        t->vb = v;
        t->ldv = vn;
        return;
    }
    for (int64_t j = 0; j < keys; ++j) {
        float* dst = t->v + j * t->ldo;
        const float* src = v + j * vn;
        for (int64_t c = 0; c < e; ++c) dst[c] = src[c * ve];
        for (int64_t c = e; c < t->ldo; ++c) dst[c] = 0.0f;
    }
    t->vb = t->v;
    t->ldv = t->ldo;
}

/* c[0:RB, 0:nv vectors] (+)= a[0:RB, 0:k] @ b[0:k, 0:nv vectors]; rows of a, b and c lda, ldb, ldc apart */
LEP_ATT_AINLINE void lep_att_tile_mm(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t k, float* c,
                                     int64_t ldc, int accumulate, const int nv) {
    lep_av acc[LEP_ATT_RB][LEP_ATT_NV];
    for (int r = 0; r < LEP_ATT_RB; ++r)
        for (int v = 0; v < nv; ++v) acc[r][v] = accumulate ? lep_av_load(c + r * ldc + v * LEP_AV) : lep_av_zero();
    for (int64_t p = 0; p < k; ++p) {
        lep_av bv[LEP_ATT_NV];
        for (int v = 0; v < nv; ++v) {
            bv[v] = lep_av_load(b + p * ldb + v * LEP_AV);
            lep_av_pin(bv[v]);
        }
        for (int r = 0; r < LEP_ATT_RB; ++r) {
            const lep_av x = lep_av_set1(a[r * lda + p]);
            for (int v = 0; v < nv; ++v) acc[r][v] = lep_av_fma(x, bv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < LEP_ATT_RB; ++r)
        for (int v = 0; v < nv; ++v) lep_av_store(c + r * ldc + v * LEP_AV, acc[r][v]);
}

/* c[0:rows, 0:nv vectors] (+)= a[0:rows, 0:k] @ b[0:k, 0:nv vectors], rows a whole number of register tiles */
static void lep_att_mm(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t k, float* c, int64_t ldc,
                       int64_t rows, int accumulate, int nv) {
    for (int64_t i = 0; i < rows; i += LEP_ATT_RB) {
        const float* ai = a + i * lda;
        float* ci = c + i * ldc;
        switch (nv) { /* a constant vector count per case: the tile's accumulators stay in registers */
#if LEP_ATT_NV == 4
        case 4: lep_att_tile_mm(ai, lda, b, ldb, k, ci, ldc, accumulate, 4); break;
        case 3: lep_att_tile_mm(ai, lda, b, ldb, k, ci, ldc, accumulate, 3); break;
#endif
        case 2: lep_att_tile_mm(ai, lda, b, ldb, k, ci, ldc, accumulate, 2); break;
        default: lep_att_tile_mm(ai, lda, b, ldb, k, ci, ldc, accumulate, 1); break;
        }
    }
}

/* The raw scores s = q k^T of query rows [i0, i0 + rows) against the first `keys` packed keys (padding
   included). */
static void lep_att_scores(lep_att_tile* t, int64_t i0, int64_t rows, int64_t keys) {
    const int64_t cols = lep_att_up(keys, LEP_AV), packed = lep_att_up(t->keys, LEP_AV), d = t->d;
    const int64_t padded = lep_att_up(rows, LEP_ATT_RB);
    for (int64_t j = 0; j < cols; j += LEP_ATT_PW) {
        const int64_t w = packed - j < LEP_ATT_PW ? packed - j : LEP_ATT_PW; /* the panel's width */
        const int nv = (int)((cols - j < w ? cols - j : w) / LEP_AV);
        lep_att_mm(t->q + i0 * d, d, t->kt + j * d, w, d, t->s + j, t->lds, padded, 0, nv);
    }
}

/* Online softmax over the scores (after the epilogue) of query rows [i0, i0 + rows), then o += p v. */
static void lep_att_update(lep_att_tile* t, int64_t i0, int64_t rows, int64_t keys) {
    const int64_t lds = t->lds, ldo = t->ldo, padded = lep_att_up(rows, LEP_ATT_RB);
    const int64_t cols = lep_att_up(keys, LEP_AV);
    for (int64_t r = 0; r < padded; ++r) {
        float* s = t->s + r * lds;
        if (r >= rows) { /* padding rows: probabilities 0, so that they stay finite */
            memset(s, 0, (size_t)keys * sizeof(float));
            continue;
        }
        for (int64_t j = keys; j < cols; ++j) s[j] = -INFINITY; /* padding columns */
        lep_av vmax = lep_av_set1(-INFINITY);
        for (int64_t j = 0; j < cols; j += LEP_AV) vmax = lep_av_max(vmax, lep_av_load(s + j));
        const float mx = lep_av_hmax(vmax);
        const float m_old = t->m[i0 + r], m_new = mx > m_old ? mx : m_old;
        const float shift = m_new == -INFINITY ? 0.0f : m_new; /* a row masked so far stays empty */
        const lep_av vshift = lep_av_set1(shift);
        lep_av vsum = lep_av_zero();
        for (int64_t j = 0; j < cols; j += LEP_AV) {
            const lep_av p = lep_av_exp(lep_av_sub(lep_av_load(s + j), vshift));
            lep_av_store(s + j, p);
            vsum = lep_av_add(vsum, p);
        }
        const float sum = lep_av_sum(vsum);
        const float alpha = expf(m_old - shift);
        t->l[i0 + r] = t->l[i0 + r] * alpha + sum;
        t->m[i0 + r] = m_new;
        if (alpha != 1.0f) {
            float* o = t->o + (i0 + r) * ldo;
            #pragma omp simd
            for (int64_t c = 0; c < ldo; ++c) o[c] *= alpha;
        }
    }
    for (int64_t c = 0; c < ldo; c += LEP_ATT_PW) {
        const int nv = ldo - c >= LEP_ATT_PW ? LEP_ATT_NV : (int)((ldo - c) / LEP_AV);
        lep_att_mm(t->s, lds, t->vb + c, t->ldv, keys, t->o + i0 * ldo + c, ldo, padded, 1, nv);
    }
}
