/* leptonc cpu kernels over quantized operands; included in a model's source when it uses them.
 *
 * Weight layouts (built once at compile time by quantized.py; the same on every instruction set, so an
 * artifact rebuilt on another CPU reads the same weights). Output channels come in panels of 16, one
 * vector of 16 floats or int32s; rows past N are zero, inputs past K are zero.
 *   int8 weight-only   [P][K][16] int8: w[16p + j][k] at panel p, step k, lane j.
 *   int4 weight-only   [P][K8][16] uint32, K8 = ceil(K / 8): word j of step c holds w[16p + j][8c + s] in
 *                      bits 4s..4s+3, two's complement.
 *   int8 for W8A8      [P][K4][16][4] int8, K4 = ceil(K / 4): w[16p + j][4c + i] at byte 4j + i of step c
 *                      (the operand of vpdpbusd), then the sum of each row: int32 [16P].
 *   scales             [P][ngroups][16] f32 (per output channel: ngroups = 1).
 *
 * lep_matmul_wq: weight-only, y[M, N] = x[M, K] @ (w * scale).T in f32. The kernel streams the narrow
 * weights once and widens them in registers, 16 output channels to a vector; a tile of MB rows of x by
 * NB panels shares each widened vector (int8: vpmovsxbd + vcvtdq2ps; int4: vpermps against a table of
 * the 16 nibble values) and accumulates each group of G inputs apart, scaled once per group.
 *
 * lep_matmul_w8a8: x quantized once per row to int8 (symmetric, scale max|row| / 127), int8 x int8
 * products summed in int32, y = acc * x_scale[m] * scale[n]. AVX-512 VNNI: vpdpbusd with x offset by 128
 * as unsigned bytes, 128 * (row sum of w) taken off at the end; AVX2: vpmaddubsw on |w| and x with w's
 * sign (products of at most 127 * 127, so the pairs never saturate), then vpmaddwd; else plain C.
 *
 * Both are parallel over units of NB panels (a static split: balanced shares), with the rows of x inside,
 * and run the kernel's fused ops (`ep`, when not NULL) on each tile of y as soon as it is stored.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#define LEP_PANEL 16

/* the fused ops of the kernel, run on each finished block [i0, i1) x [j0, j1) of y (the same type as gemm.c's) */
typedef void (*lep_epilogue)(const void* ctx, float* C, int64_t ldc, int64_t i0, int64_t i1, int64_t j0,
                             int64_t j1);

typedef float lep_vf __attribute__((vector_size(64)));
typedef int32_t lep_vi __attribute__((vector_size(64)));
typedef int8_t lep_vb __attribute__((vector_size(16)));
typedef int64_t lep_i64;

static inline lep_vf lep_vload(const float* p) {
    lep_vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline lep_vf lep_vsplat(float a) { return (lep_vf){a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a}; }

/* the first `n` lanes of v to p (all 16 when n >= 16) */
static inline void lep_vstore(float* p, lep_vf v, lep_i64 n) {
    if (n >= LEP_PANEL) memcpy(p, &v, sizeof v);
    else for (lep_i64 j = 0; j < n; ++j) p[j] = v[j];
}

/* 16 int8 weights (one per lane) as floats */
static inline lep_vf lep_widen_i8(const int8_t* p) {
#if defined(__AVX512F__)
    return (lep_vf)_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)p)));
#else
    lep_vb b;
    memcpy(&b, p, sizeof b);
    return __builtin_convertvector(__builtin_convertvector(b, lep_vi), lep_vf);
#endif
}

/* nibble s of each of 16 words, as a signed int4 value in a float; `words` already shifted right by 4s is
   passed as `shifted` (the AVX-512 path reads only the low 4 bits) */
static inline lep_vf lep_widen_i4(lep_vi shifted) {
#if defined(__AVX512F__)
    const __m512 table = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1);
    return (lep_vf)_mm512_permutexvar_ps((__m512i)shifted, table);
#else
    return __builtin_convertvector(((shifted & 15) ^ 8) - 8, lep_vf);
#endif
}

static inline lep_vi lep_vload_i(const void* p) {
    lep_vi v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* ---------------------------------------------------------------- weight-only */

/* bytes ahead of the weights being read that the kernels prefetch (measured on the GEMV chain) */
#define LEP_PREFETCH4 1024
#define LEP_PREFETCH8 256

/* acc[m][b] += sum over k in [k0, k1) of x[m][k] * w(panel b, k) */
static inline __attribute__((always_inline)) void lep_wq_span(
        const int bits, const int MB, const int NB, const float* x, lep_i64 ldx, const unsigned char* w,
        lep_i64 panel, lep_i64 k0, lep_i64 k1, lep_vf acc[4][4]) {
    lep_i64 k = k0;
    if (bits == 4) {
        for (; k < k1 && (k & 7); ++k) {  /* up to the next step of 8 inputs */
            for (int b = 0; b < NB; ++b) {
                const lep_vf wf = lep_widen_i4(lep_vload_i(w + b * panel + (k >> 3) * 64) >> (int)(4 * (k & 7)));
                for (int m = 0; m < MB; ++m) acc[m][b] += lep_vsplat(x[m * ldx + k]) * wf;
            }
        }
        for (; k + 8 <= k1; k += 8) {
            lep_vi words[4];
            for (int b = 0; b < NB; ++b) {
                words[b] = lep_vload_i(w + b * panel + (k >> 3) * 64);
                __builtin_prefetch(w + b * panel + (k >> 3) * 64 + LEP_PREFETCH4);
            }
            for (int s = 0; s < 8; ++s) {
                lep_vf wf[4];
                for (int b = 0; b < NB; ++b) {
                    wf[b] = lep_widen_i4(words[b]);
                    words[b] >>= 4;
                }
                for (int m = 0; m < MB; ++m) {
                    const lep_vf xv = lep_vsplat(x[m * ldx + k + s]);
                    for (int b = 0; b < NB; ++b) acc[m][b] += xv * wf[b];
                }
            }
        }
        for (; k < k1; ++k) {
            for (int b = 0; b < NB; ++b) {
                const lep_vf wf = lep_widen_i4(lep_vload_i(w + b * panel + (k >> 3) * 64) >> (int)(4 * (k & 7)));
                for (int m = 0; m < MB; ++m) acc[m][b] += lep_vsplat(x[m * ldx + k]) * wf;
            }
        }
        return;
    }
    for (; k < k1; ++k) {
        lep_vf wf[4];
        for (int b = 0; b < NB; ++b) {
            wf[b] = lep_widen_i8((const int8_t*)w + b * panel + k * LEP_PANEL);
            if (!(k & 3)) __builtin_prefetch(w + b * panel + k * LEP_PANEL + LEP_PREFETCH8);
        }
        for (int m = 0; m < MB; ++m) {
            const lep_vf xv = lep_vsplat(x[m * ldx + k]);
            for (int b = 0; b < NB; ++b) acc[m][b] += xv * wf[b];
        }
    }
}

/* one tile: MB rows of x by NB panels, over every group of inputs; y rows are ldy apart, n columns left */
static inline __attribute__((always_inline)) void lep_wq_tile(
        const int bits, const int MB, const int NB, const float* x, lep_i64 K, const unsigned char* w,
        lep_i64 panel, const float* scale, lep_i64 G, lep_i64 ngroups, float* y, lep_i64 ldy, lep_i64 n) {
    lep_vf total[4][4], acc[4][4];
    for (int m = 0; m < MB; ++m)
        for (int b = 0; b < NB; ++b) total[m][b] = lep_vsplat(0.0f);
    for (lep_i64 g = 0; g < ngroups; ++g) {
        for (int m = 0; m < MB; ++m)
            for (int b = 0; b < NB; ++b) acc[m][b] = lep_vsplat(0.0f);
        const lep_i64 k0 = g * G, k1 = k0 + G < K ? k0 + G : K;
        lep_wq_span(bits, MB, NB, x, K, w, panel, k0, k1, acc);
        for (int b = 0; b < NB; ++b) {
            const lep_vf s = lep_vload(scale + (b * ngroups + g) * LEP_PANEL);
            for (int m = 0; m < MB; ++m) total[m][b] += acc[m][b] * s;
        }
    }
    for (int m = 0; m < MB; ++m)
        for (int b = 0; b < NB; ++b) lep_vstore(y + m * ldy + b * LEP_PANEL, total[m][b], n - b * LEP_PANEL);
}

#define LEP_WQ_CASE(bits, mb, nb)                                                                            \
    case (mb) * 8 + (nb):                                                                                    \
        lep_wq_tile(bits, mb, nb, x, K, w, panel, scale, G, ngroups, y, ldy, n);                             \
        break;

/* lep_wq_tile8 and lep_wq_tile4: a tile of mb rows by nb panels, one specialized body for each shape that
   lep_matmul_wq asks for (mb <= 4 and nb <= 4 for one row of x, mb <= 4 and nb <= 2 otherwise) */
#define LEP_WQ_TILES(bits)                                                                                   \
    static void lep_wq_tile##bits(int mb, int nb, const float* x, lep_i64 K, const unsigned char* w,         \
                                  lep_i64 panel, const float* scale, lep_i64 G, lep_i64 ngroups, float* y,   \
                                  lep_i64 ldy, lep_i64 n) {                                                  \
        switch (mb * 8 + nb) {                                                                               \
            LEP_WQ_CASE(bits, 1, 1) LEP_WQ_CASE(bits, 1, 2) LEP_WQ_CASE(bits, 1, 3) LEP_WQ_CASE(bits, 1, 4)  \
            LEP_WQ_CASE(bits, 2, 1) LEP_WQ_CASE(bits, 2, 2) LEP_WQ_CASE(bits, 3, 1) LEP_WQ_CASE(bits, 3, 2)  \
            LEP_WQ_CASE(bits, 4, 1) LEP_WQ_CASE(bits, 4, 2)                                                  \
        }                                                                                                    \
    }
LEP_WQ_TILES(8)
LEP_WQ_TILES(4)

typedef void (*lep_wq_tile_fn)(int mb, int nb, const float* x, lep_i64 K, const unsigned char* w, lep_i64 panel,
                               const float* scale, lep_i64 G, lep_i64 ngroups, float* y, lep_i64 ldy, lep_i64 n);

/* y[M, N] = x[M, K] @ (w[N, K] * scale).T for weights in a panel layout of `panel` bytes a panel, read by
   `tile`; groups of G inputs per scale (G = K: one scale per output channel) */
static void lep_matmul_wq(lep_wq_tile_fn tile, lep_i64 panel, const float* x, const void* wv, const float* scale,
                          lep_i64 M, lep_i64 N, lep_i64 K, lep_i64 G, float* y, lep_epilogue ep, const void* epctx) {
    const unsigned char* w = (const unsigned char*)wv;
    const lep_i64 P = (N + LEP_PANEL - 1) / LEP_PANEL, ngroups = G > 0 && K > 0 ? (K + G - 1) / G : 1;
    const int MB = M == 1 ? 1 : 4, NB = M == 1 ? 4 : 2;  /* one row of x: 4 panels keep 4 FMA chains busy */
    const lep_i64 units = (P + NB - 1) / NB;
    if (G <= 0) G = K > 0 ? K : 1;
    #pragma omp parallel for schedule(static) if (M * N * K > 32768)
    for (lep_i64 u = 0; u < units; ++u) {
        const lep_i64 p0 = u * NB;
        const int nb = P - p0 < NB ? (int)(P - p0) : NB;
        for (lep_i64 m0 = 0; m0 < M; m0 += MB) {
            const int mb = M - m0 < MB ? (int)(M - m0) : MB;
            tile(mb, nb, x + m0 * K, K, w + p0 * panel, panel, scale + p0 * ngroups * LEP_PANEL, G, ngroups,
                 y + m0 * N + p0 * LEP_PANEL, N, N - p0 * LEP_PANEL);
            if (ep) ep(epctx, y, N, m0, m0 + mb, p0 * LEP_PANEL, (p0 + nb) * LEP_PANEL < N ? (p0 + nb) * LEP_PANEL : N);
        }
    }
}

static void lep_matmul_wq8(const float* x, const void* w, const float* scale, lep_i64 M, lep_i64 N, lep_i64 K,
                           lep_i64 G, float* y, lep_epilogue ep, const void* epctx) {
    lep_matmul_wq(lep_wq_tile8, K * LEP_PANEL, x, w, scale, M, N, K, G, y, ep, epctx);
}

static void lep_matmul_wq4(const float* x, const void* w, const float* scale, lep_i64 M, lep_i64 N, lep_i64 K,
                           lep_i64 G, float* y, lep_epilogue ep, const void* epctx) {
    lep_matmul_wq(lep_wq_tile4, (K + 7) / 8 * 64, x, w, scale, M, N, K, G, y, ep, epctx);
}

/* ---------------------------------------------------------------- W8A8 */

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#define LEP_VNNI 1
#define LEP_W8A8_MB 6
#define LEP_W8A8_NB 4
#else
#define LEP_W8A8_MB 2
#define LEP_W8A8_NB 2
#endif

/* acc + for each lane j: sum over i < 4 of (x4 byte i - 128) * w byte 4j + i, where x4 holds 4 unsigned
   bytes (x offset by 128) and w 64 signed bytes. With VNNI the offset stays in (taken off at the end). */
static inline lep_vi lep_dot4(lep_vi acc, uint32_t x4, const int8_t* w) {
#if defined(LEP_VNNI)
    return (lep_vi)_mm512_dpbusd_epi32((__m512i)acc, _mm512_set1_epi32((int)x4), _mm512_loadu_si512(w));
#elif defined(__AVX2__)
    const __m256i xs = _mm256_xor_si256(_mm256_set1_epi32((int)x4), _mm256_set1_epi8((char)0x80)); /* signed x */
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i half[2];
    memcpy(half, &acc, sizeof half);
    for (int h = 0; h < 2; ++h) {
        const __m256i wv = _mm256_loadu_si256((const __m256i*)(w + 32 * h));
        const __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(xs, wv));
        half[h] = _mm256_add_epi32(half[h], _mm256_madd_epi16(pairs, ones));
    }
    memcpy(&acc, half, sizeof half);
    return acc;
#else
    for (int j = 0; j < LEP_PANEL; ++j)
        for (int i = 0; i < 4; ++i) acc[j] += ((int32_t)((x4 >> (8 * i)) & 0xFF) - 128) * (int32_t)w[4 * j + i];
    return acc;
#endif
}

static inline __attribute__((always_inline)) void lep_w8a8_tile(
        const int MB, const int NB, const uint8_t* xq, lep_i64 ldq, const float* xs, const int8_t* w,
        lep_i64 panel, const int32_t* rowsum, const float* scale, float* y, lep_i64 ldy, lep_i64 n) {
    lep_vi acc[6][LEP_W8A8_NB];  /* MB <= 6 */
    for (int m = 0; m < MB; ++m)
        for (int b = 0; b < NB; ++b) acc[m][b] = (lep_vi){0};
    for (lep_i64 c = 0; c < ldq / 4; ++c) {
        for (int m = 0; m < MB; ++m) {
            uint32_t x4;
            memcpy(&x4, xq + m * ldq + 4 * c, 4);
            for (int b = 0; b < NB; ++b) acc[m][b] = lep_dot4(acc[m][b], x4, w + b * panel + c * 64);
        }
    }
    for (int b = 0; b < NB; ++b) {
        const lep_vf s = lep_vload(scale + b * LEP_PANEL);
#if defined(LEP_VNNI)
        const lep_vi offset = lep_vload_i(rowsum + b * LEP_PANEL) * 128;
#else
        const lep_vi offset = (lep_vi){0};
        (void)rowsum;
#endif
        for (int m = 0; m < MB; ++m) {  /* (acc * x_scale) * scale, rounded as the reference rounds it */
            const lep_vf v = __builtin_convertvector(acc[m][b] - offset, lep_vf) * lep_vsplat(xs[m]) * s;
            lep_vstore(y + m * ldy + b * LEP_PANEL, v, n - b * LEP_PANEL);
        }
    }
}

#define LEP_W8A8_ROWS(nbc, wb, rb, sb, yb, nleft)                                                             \
    switch (mb) {                                                                                            \
    case 1: lep_w8a8_tile(1, nbc, xq, ldq, xs, wb, panel, rb, sb, yb, ldy, nleft); break;                    \
    case 2: lep_w8a8_tile(2, nbc, xq, ldq, xs, wb, panel, rb, sb, yb, ldy, nleft); break;                    \
    case 3: lep_w8a8_tile(3, nbc, xq, ldq, xs, wb, panel, rb, sb, yb, ldy, nleft); break;                    \
    case 4: lep_w8a8_tile(4, nbc, xq, ldq, xs, wb, panel, rb, sb, yb, ldy, nleft); break;                    \
    case 5: lep_w8a8_tile(5, nbc, xq, ldq, xs, wb, panel, rb, sb, yb, ldy, nleft); break;                    \
    default: lep_w8a8_tile(6, nbc, xq, ldq, xs, wb, panel, rb, sb, yb, ldy, nleft); break;                   \
    }

/* mb (<= LEP_W8A8_MB) rows of x by nb panels: one specialized body for each row count, full or single panels */
static void lep_w8a8_dispatch(int mb, int nb, const uint8_t* xq, lep_i64 ldq, const float* xs, const int8_t* w,
                              lep_i64 panel, const int32_t* rowsum, const float* scale, float* y, lep_i64 ldy,
                              lep_i64 n) {
    if (nb == LEP_W8A8_NB) {
        LEP_W8A8_ROWS(LEP_W8A8_NB, w, rowsum, scale, y, n)
        return;
    }
    for (int b = 0; b < nb; ++b) {
        LEP_W8A8_ROWS(1, w + b * panel, rowsum + b * LEP_PANEL, scale + b * LEP_PANEL, y + b * LEP_PANEL,
                      n - b * LEP_PANEL)
    }
}

/* row m of x as unsigned bytes round(x * 127 / max|row|) + 128, padded with 128 (zero) to ldq bytes;
   xs[m] = max|row| / 127 */
static void lep_quantize_row(const float* xr, lep_i64 K, uint8_t* q, lep_i64 ldq, float* xs) {
    float amax = 0.0f;
    #pragma omp simd reduction(max:amax)
    for (lep_i64 k = 0; k < K; ++k) amax = fmaxf(amax, fabsf(xr[k]));
    if (!(amax > 0.0f)) amax = 1.0f;
    const float inv = 127.0f / amax;
    #pragma omp simd
    for (lep_i64 k = 0; k < K; ++k) {
        float v = nearbyintf(xr[k] * inv);
        v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
        q[k] = (uint8_t)((int)v + 128);
    }
    for (lep_i64 k = K; k < ldq; ++k) q[k] = 128;
    *xs = amax / 127.0f;
}

/* y[M, N] = (q(x) @ w[N, K].T) * x_scale * scale[N], w in the W8A8 layout (row sums after the panels),
   scale in panels; scratch holds M * 4 * ceil(K / 4) bytes and M floats */
static void lep_matmul_w8a8(const float* x, const void* wv, const float* scale, lep_i64 M, lep_i64 N, lep_i64 K,
                            float* y, void* scratch, lep_epilogue ep, const void* epctx) {
    const lep_i64 P = (N + LEP_PANEL - 1) / LEP_PANEL, ldq = (K + 3) / 4 * 4, panel = ldq * LEP_PANEL;
    const int8_t* w = (const int8_t*)wv;
    const int32_t* rowsum = (const int32_t*)(w + P * panel);
    float* xs = (float*)scratch;
    uint8_t* xq = (uint8_t*)(xs + M);
    const lep_i64 units = (P + LEP_W8A8_NB - 1) / LEP_W8A8_NB;
    #pragma omp parallel if (M * N * K > 65536)
    {
        #pragma omp for schedule(static)
        for (lep_i64 m = 0; m < M; ++m) lep_quantize_row(x + m * K, K, xq + m * ldq, ldq, xs + m);
        #pragma omp for schedule(static)
        for (lep_i64 u = 0; u < units; ++u) {
            const lep_i64 p0 = u * LEP_W8A8_NB;
            const int nb = P - p0 < LEP_W8A8_NB ? (int)(P - p0) : LEP_W8A8_NB;
            for (lep_i64 m0 = 0; m0 < M; m0 += LEP_W8A8_MB) {
                const int mb = M - m0 < LEP_W8A8_MB ? (int)(M - m0) : LEP_W8A8_MB;
                lep_w8a8_dispatch(mb, nb, xq + m0 * ldq, ldq, xs + m0, w + p0 * panel, panel,
                                  rowsum + p0 * LEP_PANEL, scale + p0 * LEP_PANEL, y + m0 * N + p0 * LEP_PANEL, N,
                                  N - p0 * LEP_PANEL);
                if (ep) ep(epctx, y, N, m0, m0 + mb, p0 * LEP_PANEL, (p0 + nb) * LEP_PANEL < N ? (p0 + nb) * LEP_PANEL : N);
            }
        }
    }
}

/* ---------------------------------------------------------------- quantize / dequantize */

/* index of the scale / zero point of element i of a tensor quantized along an axis of C entries with
   `inner` elements after it: per tensor (kind 0), per channel (1) or per group of G (2) */
static inline lep_i64 lep_qparam(lep_i64 i, int kind, lep_i64 C, lep_i64 inner, lep_i64 G) {
    if (kind == 0) return 0;
    const lep_i64 c = (i / inner) % C;
    if (kind == 1) return c;
    return ((i / (inner * C)) * (C / G) + c / G) * inner + i % inner;
}
