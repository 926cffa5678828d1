/* leptonc cpu kernels over quantized operands; included in a model's source when it uses them.
 *
 * lep_matmul_wq8 / lep_matmul_wq4: weight-only matmul, y[M, N] = x[M, K] @ dequantize(w[N, K]).T. The int8 or packed
 * int4 weights are widened to floats in registers inside the dot-product loop, never to a float copy of
 * the matrix; each group of G inputs of an output row accumulates on its own and is scaled once
 * (G = K: one scale per output channel). Parallel over output rows; up to 4 rows of x share each
 * widened weight vector. int4 weights are widened by a table lookup (vpermps) against x split into
 * its even and odd inputs, so that the two nibbles of a byte meet their inputs without shuffles.
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

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
static inline __mmask16 lep_mask16(int64_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

#define LEP_WIDEN_I8(p) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(p))))

/* one row of x (a GEMV) against an int8 row: four independent accumulators, so that the latency of the
   FMA does not bound the loop */
static inline float lep_gemv_i8(const float* x, const int8_t* w, const float* scale, int64_t K, int64_t G) {
    __m512 total = _mm512_setzero_ps();
    for (int64_t k0 = 0, g = 0; k0 < K; k0 += G, ++g) {
        const int64_t k1 = k0 + G < K ? k0 + G : K;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int64_t k = k0;
        for (; k + 64 <= k1; k += 64) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), LEP_WIDEN_I8(w + k), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 16), LEP_WIDEN_I8(w + k + 16), a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 32), LEP_WIDEN_I8(w + k + 32), a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 48), LEP_WIDEN_I8(w + k + 48), a3);
        }
        for (; k < k1; k += 16) {
            const __mmask16 mask = lep_mask16(k1 - k);
            const __m512 wv = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, w + k)));
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, x + k), wv, a0);
        }
        const __m512 sum = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
        total = _mm512_fmadd_ps(sum, _mm512_set1_ps(scale[g]), total);
    }
    return _mm512_reduce_add_ps(total);
}

/* the same for a packed int4 row against x split into even (xe) and odd (xo) inputs */
static inline float lep_gemv_i4(const float* xe, const float* xo, const uint8_t* w, const float* scale, int64_t P,
                                int64_t GP) {
    const __m512 table = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1);
    __m512 total = _mm512_setzero_ps();
    for (int64_t j0 = 0, g = 0; j0 < P; j0 += GP, ++g) {
        const int64_t j1 = j0 + GP < P ? j0 + GP : P;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int64_t j = j0;
        for (; j + 32 <= j1; j += 32) {
            const __m512i b0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(w + j)));
            const __m512i b1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(w + j + 16)));
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(xe + j), _mm512_permutexvar_ps(b0, table), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(xo + j), _mm512_permutexvar_ps(_mm512_srli_epi32(b0, 4), table), a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(xe + j + 16), _mm512_permutexvar_ps(b1, table), a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(xo + j + 16), _mm512_permutexvar_ps(_mm512_srli_epi32(b1, 4), table),
                                 a3);
        }
        for (; j < j1; j += 16) {
            const __mmask16 mask = lep_mask16(j1 - j);
            const __m512i b = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, w + j));
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, xe + j), _mm512_permutexvar_ps(b, table), a0);
            a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, xo + j),
                                 _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), table), a1);
        }
        const __m512 sum = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
        total = _mm512_fmadd_ps(sum, _mm512_set1_ps(scale[g]), total);
    }
    return _mm512_reduce_add_ps(total);
}
#endif

/* total[r] = sum over groups g of scale[g] * sum over k in g of x[r][k] * w[k], for mb rows of x; int8 w */
static inline void lep_row_i8(const float* x, int64_t ldx, int mb, const int8_t* w, const float* scale,
                              int64_t K, int64_t G, float* total) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    if (mb == 1) {
        total[0] = lep_gemv_i8(x, w, scale, K, G);
        return;
    }
    __m512 tv[LEP_MB];
    for (int r = 0; r < mb; ++r) tv[r] = _mm512_setzero_ps();
    for (int64_t k0 = 0, g = 0; k0 < K; k0 += G, ++g) {
        const int64_t k1 = k0 + G < K ? k0 + G : K;
        __m512 av[LEP_MB];
        for (int r = 0; r < mb; ++r) av[r] = _mm512_setzero_ps();
        for (int64_t k = k0; k < k1; k += 16) {
            const __mmask16 mask = lep_mask16(k1 - k);
            const __m512 wv = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, w + k)));
            for (int r = 0; r < mb; ++r)
                av[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, x + r * ldx + k), wv, av[r]);
        }
        const __m512 sv = _mm512_set1_ps(scale[g]);
        for (int r = 0; r < mb; ++r) tv[r] = _mm512_fmadd_ps(av[r], sv, tv[r]);
    }
    for (int r = 0; r < mb; ++r) total[r] = _mm512_reduce_add_ps(tv[r]);
#else
    for (int r = 0; r < mb; ++r) total[r] = 0.0f;
    for (int64_t k0 = 0, g = 0; k0 < K; k0 += G, ++g) {
        const int64_t k1 = k0 + G < K ? k0 + G : K;
        for (int r = 0; r < mb; ++r) {
            float acc = 0.0f;
            #pragma omp simd reduction(+:acc)
            for (int64_t k = k0; k < k1; ++k) acc += x[r * ldx + k] * (float)w[k];
            total[r] += acc * scale[g];
        }
    }
#endif
}

/* the same for packed int4 w: pair j of a row (byte j) holds inputs 2j and 2j + 1, whose x values are
   xe[j] and xo[j] (x split into even and odd inputs); GP pairs per group, P pairs in all */
static inline void lep_row_i4(const float* xe, const float* xo, int64_t ldx, int mb, const uint8_t* w,
                              const float* scale, int64_t P, int64_t GP, float* total) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    if (mb == 1) {
        total[0] = lep_gemv_i4(xe, xo, w, scale, P, GP);
        return;
    }
    /* a nibble indexes this table of its signed values: vpermps widens 16 weights in one instruction */
    const __m512 table = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1);
    __m512 tv[LEP_MB];
    for (int r = 0; r < mb; ++r) tv[r] = _mm512_setzero_ps();
    for (int64_t j0 = 0, g = 0; j0 < P; j0 += GP, ++g) {
        const int64_t j1 = j0 + GP < P ? j0 + GP : P;
        __m512 av[LEP_MB];
        for (int r = 0; r < mb; ++r) av[r] = _mm512_setzero_ps();
        for (int64_t j = j0; j < j1; j += 16) {
            const __mmask16 mask = lep_mask16(j1 - j);
            const __m512i b = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, w + j));
            const __m512 lo = _mm512_permutexvar_ps(b, table);
            const __m512 hi = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), table);
            for (int r = 0; r < mb; ++r) {
                av[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, xe + r * ldx + j), lo, av[r]);
                av[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, xo + r * ldx + j), hi, av[r]);
            }
        }
        const __m512 sv = _mm512_set1_ps(scale[g]);
        for (int r = 0; r < mb; ++r) tv[r] = _mm512_fmadd_ps(av[r], sv, tv[r]);
    }
    for (int r = 0; r < mb; ++r) total[r] = _mm512_reduce_add_ps(tv[r]);
#else
    for (int r = 0; r < mb; ++r) total[r] = 0.0f;
    for (int64_t j0 = 0, g = 0; j0 < P; j0 += GP, ++g) {
        const int64_t j1 = j0 + GP < P ? j0 + GP : P;
        for (int r = 0; r < mb; ++r) {
            float acc = 0.0f;
            #pragma omp simd reduction(+:acc)
            for (int64_t j = j0; j < j1; ++j)
                acc += xe[r * ldx + j] * lep_i4(w, 2 * j) + xo[r * ldx + j] * lep_i4(w, 2 * j + 1);
            total[r] += acc * scale[g];
        }
    }
#endif
}

/* y[M, N] = x[M, K] @ (w[N, K] * scale[N, K / G]).T, w int8; G = K: one scale per output */
static void lep_matmul_wq8(const float* x, const int8_t* w, const float* scale, int64_t M, int64_t N, int64_t K,
                           int64_t G, float* y) {
    const int64_t ngroups = G > 0 && K > 0 ? (K + G - 1) / G : 1;
    #pragma omp parallel for schedule(static) if (N * K > 32768)
    for (int64_t n = 0; n < N; ++n)
        for (int64_t m0 = 0; m0 < M; m0 += LEP_MB) {
            const int mb = M - m0 < LEP_MB ? (int)(M - m0) : LEP_MB;
            float total[LEP_MB];
            lep_row_i8(x + m0 * K, K, mb, w + n * K, scale + n * ngroups, K, G > 0 ? G : 1, total);
            for (int r = 0; r < mb; ++r) y[(m0 + r) * N + n] = total[r];
        }
}

/* the same for packed int4 w (G even, or G = K); scratch holds M * 2 * P floats, P = (K + 1) / 2 */
static void lep_matmul_wq4(const float* x, const uint8_t* w, const float* scale, int64_t M, int64_t N, int64_t K,
                           int64_t G, float* y, float* scratch) {
    const int64_t P = (K + 1) / 2, GP = G >= K ? P : G / 2, ngroups = GP > 0 ? (P + GP - 1) / GP : 1;
    for (int64_t m = 0; m < M; ++m) {  /* row m of scratch: its even inputs, then its odd ones */
        float* xe = scratch + m * 2 * P;
        for (int64_t j = 0; j < P; ++j) {
            xe[j] = x[m * K + 2 * j];
            xe[P + j] = 2 * j + 1 < K ? x[m * K + 2 * j + 1] : 0.0f;
        }
    }
    #pragma omp parallel for schedule(static) if (N * K > 32768)
    for (int64_t n = 0; n < N; ++n)
        for (int64_t m0 = 0; m0 < M; m0 += LEP_MB) {
            const int mb = M - m0 < LEP_MB ? (int)(M - m0) : LEP_MB;
            const float* xe = scratch + m0 * 2 * P;
            float total[LEP_MB];
            lep_row_i4(xe, xe + P, 2 * P, mb, w + n * P, scale + n * ngroups, P, GP > 0 ? GP : 1, total);
            for (int r = 0; r < mb; ++r) y[(m0 + r) * N + n] = total[r];
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

/* index of the scale / zero point of element i of a tensor quantized along an axis of C entries with
   `inner` elements after it: per tensor (kind 0), per channel (1) or per group of G (2) */
static inline int64_t lep_qparam(int64_t i, int kind, int64_t C, int64_t inner, int64_t G) {
    if (kind == 0) return 0;
    const int64_t c = (i / inner) % C;
    if (kind == 1) return c;
    return ((i / (inner * C)) * (C / G) + c / G) * inner + i % inner;
}
