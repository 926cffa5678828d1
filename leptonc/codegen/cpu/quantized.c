/* leptonc cpu kernels over quantized operands; included in a model's source when it uses them.
 *
 * lep_wq8 / lep_wq4: weight-only matmul, y[M, N] = x[M, K] @ dequantize(w[N, K]).T. The int8 or packed
 * int4 weights are widened to floats in registers inside the dot-product loop, never to a float copy of
 * the matrix; each group of G inputs of an output row accumulates on its own and is scaled once
 * (G = K: one scale per output channel). Parallel over output rows; up to 4 rows of x share each
 * widened weight vector.
 *
 * lep_w8a8: x quantized per row to int8 (symmetric, scale max|row| / 127), int8 x int8 products summed
 * in int32 (AVX-512 VNNI vpdpbusd: x is stored offset by 128 as unsigned, and 128 * sum(w) is taken
 * off), then y = acc * x_scale[m] * scale[n].
 *
 * Packed int4 (leptonc/ir/packing.py): byte j of a row holds input 2j in its low nibble and 2j + 1 in
 * its high nibble, two's complement; rows are (K + 1) / 2 bytes.
 */
#include <immintrin.h>

#define LEP_MB 4 /* rows of x that share one widened weight vector */

static inline float lep_i4(const uint8_t* row, int64_t k) {
    const int v = (row[k >> 1] >> ((k & 1) * 4)) & 0xF;
    return (float)((v ^ 8) - 8);
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
/* the 32 int4 weights of 16 packed bytes, in input order, as two vectors of 16 floats */
static inline void lep_widen_i4(const uint8_t* p, __m512* first, __m512* second) {
    const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)p));
    const __m512i eight = _mm512_set1_epi32(8), mask = _mm512_set1_epi32(0xF);
    const __m512i lo = _mm512_sub_epi32(_mm512_xor_si512(_mm512_and_si512(b, mask), eight), eight);
    const __m512i hi = _mm512_sub_epi32(_mm512_xor_si512(_mm512_srli_epi32(b, 4), eight), eight);
    const __m512i idx_a = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i idx_b = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    *first = _mm512_cvtepi32_ps(_mm512_permutex2var_epi32(lo, idx_a, hi));
    *second = _mm512_cvtepi32_ps(_mm512_permutex2var_epi32(lo, idx_b, hi));
}
#endif

/* acc[r] += sum over k in [k0, k1) of x[r][k] * w[k] for the mb rows of x; w int8 */
static inline void lep_dot_i8(const float* x, int64_t ldx, int mb, const int8_t* w, int64_t k0, int64_t k1,
                              float* acc) {
    int64_t k = k0;
#if defined(__AVX512F__)
    __m512 va[LEP_MB];
    for (int r = 0; r < mb; ++r) va[r] = _mm512_setzero_ps();
    for (; k + 16 <= k1; k += 16) {
        const __m512 wv = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(w + k))));
        for (int r = 0; r < mb; ++r) va[r] = _mm512_fmadd_ps(_mm512_loadu_ps(x + r * ldx + k), wv, va[r]);
    }
    for (int r = 0; r < mb; ++r) acc[r] += _mm512_reduce_add_ps(va[r]);
#endif
    for (; k < k1; ++k)
        for (int r = 0; r < mb; ++r) acc[r] += x[r * ldx + k] * (float)w[k];
}

/* the same for packed int4 weights; k0 even */
static inline void lep_dot_i4(const float* x, int64_t ldx, int mb, const uint8_t* w, int64_t k0, int64_t k1,
                              float* acc) {
    int64_t k = k0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    __m512 va[LEP_MB];
    for (int r = 0; r < mb; ++r) va[r] = _mm512_setzero_ps();
    for (; k + 32 <= k1; k += 32) {
        __m512 w0, w1;
        lep_widen_i4(w + (k >> 1), &w0, &w1);
        for (int r = 0; r < mb; ++r) {
            va[r] = _mm512_fmadd_ps(_mm512_loadu_ps(x + r * ldx + k), w0, va[r]);
            va[r] = _mm512_fmadd_ps(_mm512_loadu_ps(x + r * ldx + k + 16), w1, va[r]);
        }
    }
    for (int r = 0; r < mb; ++r) acc[r] += _mm512_reduce_add_ps(va[r]);
#endif
    for (; k < k1; ++k) {
        const float wk = lep_i4(w, k);
        for (int r = 0; r < mb; ++r) acc[r] += x[r * ldx + k] * wk;
    }
}

/* y[M, N] = x[M, K] @ (w[N, K] * scale[N, K / G]).T; bits 8 (int8) or 4 (packed int4) */
static void lep_matmul_wq(const float* x, const void* w, int bits, const float* scale, int64_t M, int64_t N,
                          int64_t K, int64_t G, float* y) {
    const int64_t ngroups = G > 0 ? K / G : 1, row_bytes = bits == 8 ? K : (K + 1) / 2;
    #pragma omp parallel for schedule(static) if (N * K > 32768)
    for (int64_t n = 0; n < N; ++n) {
        const uint8_t* wn = (const uint8_t*)w + n * row_bytes;
        const float* sn = scale + n * ngroups;
        for (int64_t m0 = 0; m0 < M; m0 += LEP_MB) {
            const int mb = M - m0 < LEP_MB ? (int)(M - m0) : LEP_MB;
            const float* xm = x + m0 * K;
            float total[LEP_MB] = {0};
            for (int64_t g = 0; g < ngroups; ++g) {
                float acc[LEP_MB] = {0};
                const int64_t k0 = g * G, k1 = g + 1 == ngroups ? K : k0 + G;
                if (bits == 8) lep_dot_i8(xm, K, mb, (const int8_t*)wn, k0, k1, acc);
                else lep_dot_i4(xm, K, mb, wn, k0, k1, acc);
                for (int r = 0; r < mb; ++r) total[r] += acc[r] * sn[g];
            }
            for (int r = 0; r < mb; ++r) y[(m0 + r) * N + n] = total[r];
        }
    }
}

/* xq[M, K] = round(x * 127 / max|row|) + 128 as unsigned bytes, xs[M] = max|row| / 127 */
static void lep_quantize_rows(const float* x, int64_t M, int64_t K, uint8_t* xq, float* xs) {
    #pragma omp parallel for schedule(static) if (M * K > 65536)
    for (int64_t m = 0; m < M; ++m) {
        const float* xr = x + m * K;
        float amax = 0.0f;
        for (int64_t k = 0; k < K; ++k) amax = fmaxf(amax, fabsf(xr[k]));
        if (!(amax > 0.0f)) amax = 1.0f;
        const float inv = 127.0f / amax;
        uint8_t* q = xq + m * K;
        for (int64_t k = 0; k < K; ++k) {
            float v = nearbyintf(xr[k] * inv);
            v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
            q[k] = (uint8_t)((int)v + 128);
        }
        xs[m] = amax / 127.0f;
    }
}

/* acc[r] = sum over k of (xq[r][k] - 128) * w[k] for the mb rows of xq, in int32 */
static inline void lep_dot_u8i8(const uint8_t* xq, int64_t ldx, int mb, const int8_t* w, int64_t K,
                                int32_t* acc) {
    int64_t k = 0;
    for (int r = 0; r < mb; ++r) acc[r] = 0;
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
    /* vpdpbusd: unsigned x signed bytes, four products summed into each int32 lane */
    __m512i va[LEP_MB], vs = _mm512_setzero_si512();
    const __m512i ones = _mm512_set1_epi8(1);
    for (int r = 0; r < mb; ++r) va[r] = _mm512_setzero_si512();
    for (; k < K; k += 64) {
        const __mmask64 mask = K - k >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (K - k)) - 1);
        const __m512i wv = _mm512_maskz_loadu_epi8(mask, w + k);
        vs = _mm512_dpbusd_epi32(vs, ones, wv);
        for (int r = 0; r < mb; ++r)
            va[r] = _mm512_dpbusd_epi32(va[r], _mm512_maskz_loadu_epi8(mask, xq + r * ldx + k), wv);
    }
    const int32_t wsum = _mm512_reduce_add_epi32(vs);
    for (int r = 0; r < mb; ++r) acc[r] = _mm512_reduce_add_epi32(va[r]) - 128 * wsum;
#elif defined(__AVX2__)
    /* vpmaddwd: x - 128 and w widened to int16, pairs of products summed into int32 lanes */
    __m256i va[LEP_MB];
    const __m256i off = _mm256_set1_epi16(128);
    for (int r = 0; r < mb; ++r) va[r] = _mm256_setzero_si256();
    for (; k + 16 <= K; k += 16) {
        const __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(w + k)));
        for (int r = 0; r < mb; ++r) {
            const __m256i xv = _mm256_sub_epi16(
                _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)(xq + r * ldx + k))), off);
            va[r] = _mm256_add_epi32(va[r], _mm256_madd_epi16(xv, wv));
        }
    }
    int32_t lanes[8];
    for (int r = 0; r < mb; ++r) {
        _mm256_storeu_si256((__m256i*)lanes, va[r]);
        for (int i = 0; i < 8; ++i) acc[r] += lanes[i];
    }
#endif
    for (; k < K; ++k)
        for (int r = 0; r < mb; ++r) acc[r] += ((int32_t)xq[r * ldx + k] - 128) * (int32_t)w[k];
}

/* y[M, N] = (q(x) @ w[N, K].T) * x_scale * scale[N]; scratch holds M * K bytes and M floats */
static void lep_matmul_w8a8(const float* x, const int8_t* w, const float* scale, int64_t M, int64_t N, int64_t K,
                            float* y, void* scratch) {
    float* xs = (float*)scratch;
    uint8_t* xq = (uint8_t*)(xs + M);
    lep_quantize_rows(x, M, K, xq, xs);
    #pragma omp parallel for schedule(static) if (M * N * K > 65536)
    for (int64_t n = 0; n < N; ++n) {
        const int8_t* wn = w + n * K;
        for (int64_t m0 = 0; m0 < M; m0 += LEP_MB) {
            const int mb = M - m0 < LEP_MB ? (int)(M - m0) : LEP_MB;
            int32_t acc[LEP_MB];
            lep_dot_u8i8(xq + m0 * K, K, mb, wn, K, acc);
            for (int r = 0; r < mb; ++r) y[(m0 + r) * N + n] = (float)acc[r] * xs[m0 + r] * scale[n];
        }
    }
}
