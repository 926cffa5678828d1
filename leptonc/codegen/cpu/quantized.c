/* leptonc cpu kernels over quantized operands; included in a model's source when it uses them.
 *
 * Weight layouts (built once at compile time by quantized.py; the same on every instruction set, so an
 * artifact rebuilt on another CPU reads the same weights). Output channels come in panels of 16, one
 * vector of 16 floats or int32s, and panels in units of 4 (P = 4 * ceil(N / 64) panels); rows past N are
 * zero, inputs past K are zero. A step is 64 bytes: the weights of 4 (int8) or 8 (int4) consecutive
 * inputs of a panel's 16 channels; the 4 panels of a unit interleave step by step, so that a kernel
 * reading a unit reads one stream.
 *   int8   [P/4][K4][4][16][4] int8, K4 = ceil(K / 4): w[16p + j][4c + i] at byte 4j + i of step c of panel
 *          p (the operand of vpdpbusd); then the sum of each row over each group of inputs, int32
 *          [P/4][ngroups][4][16] (the 4 panels of a unit side by side for each group, so that a unit's kernel
 *          reads them as one stream too).
 *   int4   [P/4][K8][4][16][4] bytes, K8 = ceil(K / 8): byte 4j + i of step c of panel p holds
 *          w[16p + j][8c + i] + 8 in its low nibble and w[16p + j][8c + 4 + i] + 8 in its high nibble
 *          (offset binary: 0..15, the unsigned operand of vpdpbusd); no row sums.
 *   scales [P/4][ngroups][4][16] f32, like the row sums (per output channel: ngroups = 1, [P][16]).
 *
 * lep_matmul_wq8 / lep_matmul_wq4: weight-only, y[M, N] = x[M, K] @ (w * scale).T in f32. The kernels
 * stream the narrow weights once, 16 output channels to a vector, for a tile of rows of x and panels.
 *   AVX-512 VNNI: each row of x becomes a 24-bit fixed-point number per element (X = round(x * s) with
 *   s about 2^23 / max|row|, an error of at most max|row| * 2^-24, the size of fp32's own rounding), split
 *   into three byte digits; vpdpbusd multiplies each digit by the weights in int32, and the three sums
 *   combine per group into floats. int8 weights are its signed operand and the digits unsigned (the top one
 *   offset by 128, taken off with the weights' row sums); int4 weights, unpacked with two ands and a shift,
 *   its unsigned operand and the digits signed (the weights' offset of 8 taken off with x's digit sums, where
 *   each group's sums start). About one instruction per 16 multiply-adds.
 *   Otherwise (no VNNI, a row of x with inf or NaN, or groups that do not fall on steps): the weights widen
 *   to floats in registers (int8 by shifts, int4 by a vpermps lookup) for FMAs with x.
 * Each group of G inputs accumulates apart and is scaled once.
 *
 * lep_matmul_w8a8: x quantized once per row to int8 (symmetric, scale max|row| / 127), int8 x int8
 * products summed in int32, y = acc * x_scale[m] * scale[n]. AVX-512 VNNI: vpdpbusd with x offset by 128
 * as unsigned bytes, 128 * (row sum of w) taken off at the end; AVX2: vpmaddubsw on |w| and x with w's
 * sign (products of at most 127 * 127, so the pairs never saturate), then vpmaddwd; else plain C.
 *
 * All run in parallel over units of panels (a static split: balanced shares), with the rows of x inside,
 * and run the kernel's fused ops (`ep`, when not NULL) on each tile of y as soon as it is stored.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#define LEP_PANEL 16
#define LEP_STEP 64                     /* bytes of one step of a panel */
#define LEP_UNIT 4                      /* panels interleaved step by step */
#define LEP_USTEP (LEP_UNIT * LEP_STEP) /* bytes from one step of a panel to its next */
#define LEP_PREFETCH 1024               /* bytes ahead of the weights being read that the float path prefetches */

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#define LEP_VNNI 1
#endif

/* the fused ops of the kernel, run on each finished block [i0, i1) x [j0, j1) of y (the same type as gemm.c's) */
typedef void (*lep_epilogue)(const void* ctx, float* C, int64_t ldc, int64_t i0, int64_t i1, int64_t j0,
                             int64_t j1);

typedef float lep_vf __attribute__((vector_size(64)));
typedef int32_t lep_vi __attribute__((vector_size(64)));
typedef int64_t lep_i64;

static inline lep_vf lep_vload(const float* p) {
    lep_vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline lep_vi lep_vload_i(const void* p) {
    lep_vi v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline lep_vf lep_vsplat(float a) { return (lep_vf){a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a}; }

/* the first `n` lanes of v to p (all 16 when n >= 16) */
static inline void lep_vstore(float* p, lep_vf v, lep_i64 n) {
    if (n >= LEP_PANEL) memcpy(p, &v, sizeof v);
    else for (lep_i64 j = 0; j < n; ++j) p[j] = v[j];
}

static inline lep_i64 lep_min(lep_i64 a, lep_i64 b) { return a < b ? a : b; }
static inline lep_i64 lep_max(lep_i64 a, lep_i64 b) { return a > b ? a : b; }

/* offset (in entries) of panel p's first group in the scales or row sums, [P/4][ngroups][4][16]; entry
   (g * LEP_UNIT + b) * LEP_PANEL from there is group g of panel p + b, for panels of p's unit */
static inline lep_i64 lep_meta(lep_i64 ngroups, lep_i64 p) {
    return (p / LEP_UNIT * LEP_UNIT * ngroups + p % LEP_UNIT) * LEP_PANEL;
}

/* step 0 of panel p of weights with `steps` steps a panel */
static inline const unsigned char* lep_panel(const void* w, lep_i64 steps, lep_i64 p) {
    return (const unsigned char*)w + p / LEP_UNIT * steps * LEP_USTEP + p % LEP_UNIT * LEP_STEP;
}

/* ---------------------------------------------------------------- weight-only: floats */

/* inputs per step, and the input (from the step's first) of its t-th weight in a lane */
#define LEP_STEP_K(bits) ((bits) == 8 ? 4 : 8)
#define LEP_STEP_INPUT(bits, t) ((bits) == 8 ? (t) : ((t) >> 1) + 4 * ((t) & 1))

/* the t-th weights of the 16 lanes of a step, as floats */
static inline lep_vf lep_widen(const int bits, lep_vi step, int t) {
    if (bits == 8) return __builtin_convertvector((step << (24 - 8 * t)) >> 24, lep_vf);
#if defined(__AVX512F__)
    const __m512 table = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
    return (lep_vf)_mm512_permutexvar_ps((__m512i)(step >> (4 * t)), table);
#else
    return __builtin_convertvector(((step >> (4 * t)) & 15) - 8, lep_vf);
#endif
}

/* the weights of input k of a panel, as floats */
static inline lep_vf lep_weights_at(const int bits, const unsigned char* panel, lep_i64 k) {
    const int i = (int)(k % LEP_STEP_K(bits));
    const int t = bits == 8 ? i : (i < 4 ? 2 * i : 2 * (i - 4) + 1);
    return lep_widen(bits, lep_vload_i(panel + k / LEP_STEP_K(bits) * LEP_USTEP), t);
}

/* acc[m][b] += sum over k in [k0, k1) of x[m][k] * w(panel b, k): whole steps at once, the rest input by input */
static inline __attribute__((always_inline)) void lep_wqf_span(
        const int bits, const int MB, const int NB, const float* x, lep_i64 ldx, const unsigned char* w,
        lep_i64 k0, lep_i64 k1, lep_vf acc[4][4]) {
    const int SK = LEP_STEP_K(bits);
    lep_i64 k = k0;
    for (; k < k1 && (k % SK || k + SK > k1); ++k) {
        for (int b = 0; b < NB; ++b) {
            const lep_vf wf = lep_weights_at(bits, w + b * LEP_STEP, k);
            for (int m = 0; m < MB; ++m) acc[m][b] += lep_vsplat(x[m * ldx + k]) * wf;
        }
    }
    for (; k + SK <= k1; k += SK) {
        lep_vi steps[4];
        for (int b = 0; b < NB; ++b) {
            steps[b] = lep_vload_i(w + b * LEP_STEP + k / SK * LEP_USTEP);
            __builtin_prefetch(w + b * LEP_STEP + k / SK * LEP_USTEP + LEP_PREFETCH);
        }
        for (int t = 0; t < SK; ++t) {
            lep_vf wf[4];
            for (int b = 0; b < NB; ++b) wf[b] = lep_widen(bits, steps[b], t);
            for (int m = 0; m < MB; ++m) {
                const lep_vf xv = lep_vsplat(x[m * ldx + k + LEP_STEP_INPUT(bits, t)]);
                for (int b = 0; b < NB; ++b) acc[m][b] += xv * wf[b];
            }
        }
    }
    for (; k < k1; ++k) {
        for (int b = 0; b < NB; ++b) {
            const lep_vf wf = lep_weights_at(bits, w + b * LEP_STEP, k);
            for (int m = 0; m < MB; ++m) acc[m][b] += lep_vsplat(x[m * ldx + k]) * wf;
        }
    }
}

/* one tile of MB rows of x by NB panels over every group of inputs; y rows ldy apart, n columns left */
static inline __attribute__((always_inline)) void lep_wqf_tile(
        const int bits, const int MB, const int NB, const float* x, lep_i64 K, const unsigned char* w,
        const float* scale, lep_i64 G, lep_i64 ngroups, float* y, lep_i64 ldy, lep_i64 n) {
    lep_vf total[4][4], acc[4][4];
    for (int m = 0; m < MB; ++m)
        for (int b = 0; b < NB; ++b) total[m][b] = lep_vsplat(0.0f);
    for (lep_i64 g = 0; g < ngroups; ++g) {
        for (int m = 0; m < MB; ++m)
            for (int b = 0; b < NB; ++b) acc[m][b] = lep_vsplat(0.0f);
        lep_wqf_span(bits, MB, NB, x, K, w, g * G, lep_min(K, g * G + G), acc);
        for (int b = 0; b < NB; ++b) {
            const lep_vf s = lep_vload(scale + (g * LEP_UNIT + b) * LEP_PANEL);
            for (int m = 0; m < MB; ++m) total[m][b] += acc[m][b] * s;
        }
    }
    for (int m = 0; m < MB; ++m)
        for (int b = 0; b < NB; ++b) lep_vstore(y + m * ldy + b * LEP_PANEL, total[m][b], n - b * LEP_PANEL);
}

/* ---------------------------------------------------------------- weight-only: fixed point, VNNI */

/* Scratch of the fixed-point path: per row of x its scale (f32), then per row the digit sums of each group
   times -8 (int32 [ngroups][3], for the offset of int4 weights), then per row its digits: for each step of 4
   inputs, 4 bytes of digit 0, 4 of digit 1, 4 of digit 2. */
static inline lep_i64 lep_digit_bytes(lep_i64 K) { return (K + 7) / 8 * 8 * 3; }

#if defined(LEP_VNNI)
/* Row x[0:K] as 3 byte digits a number (see above), 16 inputs (4 steps) to a vector; returns 0 when it holds
   inf or NaN, or is too small to scale. Unsigned digits (for int8 weights, the signed operand of vpdpbusd):
   X = round(x * s) in [-(2^23 - 1), 2^23 - 1], the top digit offset by 128. Signed digits (for int4 weights,
   stored offset binary: the unsigned operand): X = d0 + 256 d1 + 65536 d2, each digit in [-128, 127], so X
   lies in [-128 * 0x010101, 127 * 0x010101]; their sums per group, times -8, go to dsum. */
static int lep_digits_row(const int is_signed, const float* x, lep_i64 K, lep_i64 G, lep_i64 ngroups, float* xs,
                          int32_t* dsum, uint8_t* d) {
    __m512 vmax = _mm512_setzero_ps();
    __mmask16 special = 0;  /* lanes that met an inf or NaN (where x * 0 is not 0) */
    for (lep_i64 k = 0; k < K; k += 16) {
        const __mmask16 in = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(in, x + k);
        special |= _mm512_cmp_ps_mask(_mm512_mul_ps(v, _mm512_setzero_ps()), _mm512_setzero_ps(), _CMP_NEQ_UQ);
        vmax = _mm512_max_ps(vmax, _mm512_abs_ps(v));
    }
    const float amax = _mm512_reduce_max_ps(vmax);
    if (special || (amax > 0.0f && amax < 0x1p-100f)) return 0;
    const int32_t top = is_signed ? 127 * 0x010101 : 8388607;
    const __m512i hi = _mm512_set1_epi32(top), lo = _mm512_set1_epi32(is_signed ? -128 * 0x010101 : -top);
    /* the digits: the bytes of X + bias, xored with flip (signed: X + 0x808080 has unsigned digits, each 128
       above the signed one) */
    const __m512i bias = _mm512_set1_epi32(is_signed ? 0x808080 : 0), flip = _mm512_set1_epi32(is_signed ? 0x808080 : 0x800000);
    const __m512 inv = _mm512_set1_ps(amax > 0.0f ? (float)top / amax : 0.0f);
    *xs = amax > 0.0f ? amax / (float)top : 0.0f;
    /* within each 128-bit lane (4 inputs of a step): byte 0 of the 4 inputs, then bytes 1, then bytes 2 */
    const __m512i order = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    const lep_i64 padded = (K + 7) / 8 * 8;
    for (lep_i64 g = 0; g < ngroups; ++g) {  /* the last group takes the padding too; groups end on steps */
        const lep_i64 k1 = g == ngroups - 1 ? padded : g * G + G;
        __m512i sums[3] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
        for (lep_i64 k = g * G; k < k1; k += 16) {
            const lep_i64 n = lep_min(16, k1 - k), real = lep_min(n, K - k);  /* n: a multiple of 4 */
            const __mmask16 lanes = (__mmask16)((1u << n) - 1);
            const __m512 v = _mm512_maskz_loadu_ps(real > 0 ? (__mmask16)((1u << real) - 1) : 0, x + k);
            /* X = round(x * s): at max|row| it may round past the top, so clamp */
            __m512i X = _mm512_cvtps_epi32(_mm512_mul_ps(v, inv));
            X = _mm512_max_epi32(_mm512_min_epi32(X, hi), lo);
            const __m512i b = _mm512_xor_si512(_mm512_add_epi32(X, bias), flip);
            if (is_signed)
                for (int j = 0; j < 3; ++j)
                    sums[j] = _mm512_mask_add_epi32(sums[j], lanes, sums[j],
                                                    _mm512_srai_epi32(_mm512_slli_epi32(b, 24 - 8 * j), 24));
            /* 12 bytes a step: the first 3 dwords of each lane, packed together */
            const __m512i steps = _mm512_maskz_compress_epi32(0x7777, _mm512_shuffle_epi8(b, order));
            _mm512_mask_storeu_epi32(d + k / 4 * 12, (__mmask16)((1u << (3 * n / 4)) - 1), steps);
        }
        if (is_signed)
            for (int j = 0; j < 3; ++j) dsum[g * 3 + j] = -8 * _mm512_reduce_add_epi32(sums[j]);
    }
    return 1;
}

/* 4 bytes at q in every 32-bit lane */
static inline __m512i lep_bcast4(const uint8_t* q) {
    int v;
    memcpy(&v, q, 4);
    return _mm512_set1_epi32(v);
}

/* one tile of MB rows of digits by NB panels; digits rows ldd bytes apart, digit sums lds ints apart. int8
   weights are the signed operand of vpdpbusd (x's unsigned digits, the top one offset by 128, taken off with
   the row sums wsum); int4 weights, offset binary, the unsigned operand (x's signed digits; the offset taken
   off by starting each group's sums at -8 times its digit sums). */
static inline __attribute__((always_inline)) void lep_wqi_tile(
        const int bits, const int MB, const int NB, const uint8_t* d, lep_i64 ldd, const int32_t* dsum, lep_i64 lds,
        const float* xs, const unsigned char* w, const int32_t* wsum, const float* scale,
        lep_i64 G, lep_i64 K, lep_i64 ngroups, float* y, lep_i64 ldy, lep_i64 n) {
    const __m512i low = _mm512_set1_epi8(0x0F);
    __m512 total[2][4];
    for (int m = 0; m < MB; ++m)
        for (int b = 0; b < NB; ++b) total[m][b] = _mm512_setzero_ps();
    const lep_i64 steps = bits == 8 ? (K + 3) / 4 : (K + 7) / 8;
    const lep_i64 per_group = ngroups == 1 ? steps : G / LEP_STEP_K(bits);
    for (lep_i64 g = 0; g < ngroups; ++g) {
        __m512i acc[2][4][3];
        for (int m = 0; m < MB; ++m)
            for (int j = 0; j < 3; ++j) {
                const __m512i start = bits == 8 ? _mm512_setzero_si512() : _mm512_set1_epi32(dsum[m * lds + g * 3 + j]);
                for (int b = 0; b < NB; ++b) acc[m][b][j] = start;
            }
        for (lep_i64 c = g * per_group; c < lep_min(steps, g * per_group + per_group); ++c) {
            for (int b = 0; b < NB; ++b) {
                const unsigned char* wp = w + b * LEP_STEP + c * LEP_USTEP;
                const __m512i v = _mm512_loadu_si512((const void*)wp);
                if (bits == 8) {
                    for (int m = 0; m < MB; ++m) {
                        const uint8_t* q = d + m * ldd + c * 12;
                        for (int j = 0; j < 3; ++j)
                            acc[m][b][j] = _mm512_dpbusd_epi32(acc[m][b][j], lep_bcast4(q + 4 * j), v);
                    }
                } else {
                    const __m512i lo = _mm512_and_si512(v, low), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
                    for (int m = 0; m < MB; ++m) {
                        const uint8_t* q = d + m * ldd + c * 24;
                        for (int j = 0; j < 3; ++j) {
                            acc[m][b][j] = _mm512_dpbusd_epi32(acc[m][b][j], lo, lep_bcast4(q + 4 * j));
                            acc[m][b][j] = _mm512_dpbusd_epi32(acc[m][b][j], hi, lep_bcast4(q + 12 + 4 * j));
                        }
                    }
                }
            }
        }
        /* the digits' sums, exact in int32, into one float: A0 + 256 A1 + 65536 A2 */
        for (int b = 0; b < NB; ++b) {
            const __m512 s = _mm512_loadu_ps(scale + (g * LEP_UNIT + b) * LEP_PANEL);
            __m512i offset = _mm512_setzero_si512();  /* int8: the top digit's 128, times the row sums */
            if (bits == 8) offset = _mm512_slli_epi32(_mm512_loadu_si512(wsum + (g * LEP_UNIT + b) * LEP_PANEL), 7);
            for (int m = 0; m < MB; ++m) {
                const __m512 t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[m][b][2], offset)),
                                                 _mm512_set1_ps(65536.0f),
                                                 _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[m][b][1]), _mm512_set1_ps(256.0f),
                                                                 _mm512_cvtepi32_ps(acc[m][b][0])));
                total[m][b] = _mm512_fmadd_ps(t, s, total[m][b]);
            }
        }
    }
    for (int m = 0; m < MB; ++m)
        for (int b = 0; b < NB; ++b)
            lep_vstore(y + m * ldy + b * LEP_PANEL, (lep_vf)_mm512_mul_ps(total[m][b], _mm512_set1_ps(xs[m])),
                       n - b * LEP_PANEL);
}
#endif

/* ---------------------------------------------------------------- weight-only: the driver */

/* a tile of mb rows by nb panels, by the float path or (ints != 0) the fixed-point path */
struct lep_wq_args {
    const float* x; lep_i64 K, G, ngroups, steps; const void* w; const int32_t* wsum; const float* scale;
    const uint8_t* digits; const int32_t* dsum; const float* xs; lep_i64 ldd, lds; float* y; lep_i64 N;
};

#if defined(LEP_VNNI)
#define LEP_WQ_INTS(bits, mb, nb)                                                                           \
    lep_wqi_tile(bits, mb, nb, a->digits + m0 * a->ldd, a->ldd, a->dsum + m0 * a->lds, a->lds, a->xs + m0,  \
                 lep_panel(a->w, a->steps, p0), a->wsum + lep_meta(a->ngroups, p0),                         \
                 a->scale + lep_meta(a->ngroups, p0), a->G, a->K, a->ngroups, yt, a->N, nleft)
#else
#define LEP_WQ_INTS(bits, mb, nb) (void)0
#endif
#define LEP_WQ_CASE(bits, mb, nb)                                                                           \
    case (mb) * 8 + (nb):                                                                                   \
        if (ints) LEP_WQ_INTS(bits, mb, nb);                                                                \
        else lep_wqf_tile(bits, mb, nb, a->x + m0 * a->K, a->K, lep_panel(a->w, a->steps, p0),              \
                          a->scale + lep_meta(a->ngroups, p0), a->G, a->ngroups, yt, a->N, nleft);          \
        break;

/* lep_wq_tile8 and lep_wq_tile4: one specialized body for each tile shape the driver asks for (one row of
   x by up to a unit of panels, or up to 2 rows by up to 2 panels) */
#define LEP_WQ_TILES(bits)                                                                                  \
    static void lep_wq_tile##bits(const struct lep_wq_args* a, int ints, lep_i64 m0, int mb, lep_i64 p0,     \
                                  int nb) {                                                                 \
        float* yt = a->y + m0 * a->N + p0 * LEP_PANEL;                                                      \
        const lep_i64 nleft = a->N - p0 * LEP_PANEL;                                                        \
        switch (mb * 8 + nb) {                                                                              \
            LEP_WQ_CASE(bits, 1, 1) LEP_WQ_CASE(bits, 1, 2) LEP_WQ_CASE(bits, 1, 3) LEP_WQ_CASE(bits, 1, 4) \
            LEP_WQ_CASE(bits, 2, 1) LEP_WQ_CASE(bits, 2, 2)                                                 \
        }                                                                                                   \
    }
LEP_WQ_TILES(8)
LEP_WQ_TILES(4)

typedef void (*lep_wq_tile_fn)(const struct lep_wq_args* a, int ints, lep_i64 m0, int mb, lep_i64 p0, int nb);

/* Scratch bytes of lep_matmul_wq: the fixed-point path's digits of x (see lep_digits_row) */
static inline lep_i64 lep_wq_scratch(lep_i64 M, lep_i64 K, lep_i64 ngroups) {
    return M * (4 + 12 * ngroups + lep_digit_bytes(K));
}

/* y[M, N] = x[M, K] @ (w[N, K] * scale).T for weights in the int8 (bits 8) or int4 (bits 4) panel layout,
   groups of G inputs per scale (G = K: one scale per output channel) */
static void lep_matmul_wq(int bits, lep_wq_tile_fn tile, const float* x, const void* w, const float* scale,
                          lep_i64 M, lep_i64 N, lep_i64 K, lep_i64 G, float* y, void* scratch, lep_epilogue ep,
                          const void* epctx) {
    const lep_i64 P = (N + LEP_PANEL - 1) / LEP_PANEL, units = (P + LEP_UNIT - 1) / LEP_UNIT;
    if (G <= 0 || G > K) G = K > 0 ? K : 1;
    const lep_i64 ngroups = K > 0 ? (K + G - 1) / G : 1;
    const lep_i64 steps = bits == 8 ? (K + 3) / 4 : (K + 7) / 8;
    struct lep_wq_args a = {x, K, G, ngroups, steps, w,
                            (const int32_t*)((const unsigned char*)w + units * steps * LEP_USTEP), scale, NULL,
                            NULL, NULL, lep_digit_bytes(K), 3 * ngroups, y, N};
    /* the fixed-point path: VNNI, groups on whole steps, int32 sums that cannot overflow (255 * 128 per
       input), and every row finite */
    int ints = 0;
#if defined(LEP_VNNI)
    ints = (G == K || G % LEP_STEP_K(bits) == 0) && G <= 65536 && K > 0;
    float* xs = (float*)scratch;
    int32_t* dsum = (int32_t*)(xs + M);
    uint8_t* digits = (uint8_t*)(dsum + M * 3 * ngroups);
    a.xs = xs, a.dsum = dsum, a.digits = digits;
#else
    (void)scratch;
#endif
    int finite = 1;
    #pragma omp parallel if (M * N * K > 32768)
    {
#if defined(LEP_VNNI)
        if (ints) {
            #pragma omp for schedule(static) reduction(&&:finite)
            for (lep_i64 m = 0; m < M; ++m)
                finite = lep_digits_row(bits == 4, x + m * K, K, G, ngroups, xs + m,
                                        dsum + m * 3 * ngroups, digits + m * a.ldd) && finite;
        }
#endif
        const int use_ints = ints && finite;  /* read after the loop's barrier */
        /* tiles: one row of x by a unit; the float path with several rows: 2 rows by half a unit */
        const int MB = use_ints || M == 1 ? 1 : 2, NB = MB == 1 ? LEP_UNIT : 2;
        #pragma omp for schedule(static)
        for (lep_i64 u = 0; u < units; ++u) {
            for (lep_i64 p0 = u * LEP_UNIT; p0 < lep_min(P, (u + 1) * LEP_UNIT); p0 += NB) {
                const int nb = (int)lep_min(NB, P - p0);
                for (lep_i64 m0 = 0; m0 < M; m0 += MB) {
                    const int mb = (int)lep_min(MB, M - m0);
                    tile(&a, use_ints, m0, mb, p0, nb);
                    if (ep) ep(epctx, y, N, m0, m0 + mb, p0 * LEP_PANEL, lep_min((p0 + nb) * LEP_PANEL, N));
                }
            }
        }
    }
}

static void lep_matmul_wq8(const float* x, const void* w, const float* scale, lep_i64 M, lep_i64 N, lep_i64 K,
                           lep_i64 G, float* y, void* scratch, lep_epilogue ep, const void* epctx) {
    lep_matmul_wq(8, lep_wq_tile8, x, w, scale, M, N, K, G, y, scratch, ep, epctx);
}

static void lep_matmul_wq4(const float* x, const void* w, const float* scale, lep_i64 M, lep_i64 N, lep_i64 K,
                           lep_i64 G, float* y, void* scratch, lep_epilogue ep, const void* epctx) {
    lep_matmul_wq(4, lep_wq_tile4, x, w, scale, M, N, K, G, y, scratch, ep, epctx);
}

/* ---------------------------------------------------------------- W8A8 */

#if defined(LEP_VNNI)
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
        const int32_t* rowsum, const float* scale, float* y, lep_i64 ldy, lep_i64 n) {
    lep_vi acc[6][LEP_W8A8_NB];  /* MB <= 6 */
    for (int m = 0; m < MB; ++m)
        for (int b = 0; b < NB; ++b) acc[m][b] = (lep_vi){0};
    for (lep_i64 c = 0; c < ldq / 4; ++c) {
        for (int m = 0; m < MB; ++m) {
            uint32_t x4;
            memcpy(&x4, xq + m * ldq + 4 * c, 4);
            for (int b = 0; b < NB; ++b) acc[m][b] = lep_dot4(acc[m][b], x4, w + b * LEP_STEP + c * LEP_USTEP);
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
    case 1: lep_w8a8_tile(1, nbc, xq, ldq, xs, wb, rb, sb, yb, ldy, nleft); break;                           \
    case 2: lep_w8a8_tile(2, nbc, xq, ldq, xs, wb, rb, sb, yb, ldy, nleft); break;                           \
    case 3: lep_w8a8_tile(3, nbc, xq, ldq, xs, wb, rb, sb, yb, ldy, nleft); break;                           \
    case 4: lep_w8a8_tile(4, nbc, xq, ldq, xs, wb, rb, sb, yb, ldy, nleft); break;                           \
    case 5: lep_w8a8_tile(5, nbc, xq, ldq, xs, wb, rb, sb, yb, ldy, nleft); break;                           \
    default: lep_w8a8_tile(6, nbc, xq, ldq, xs, wb, rb, sb, yb, ldy, nleft); break;                          \
    }

/* mb (<= LEP_W8A8_MB) rows of x by nb panels: one specialized body for each row count, full or single panels */
static void lep_w8a8_dispatch(int mb, int nb, const uint8_t* xq, lep_i64 ldq, const float* xs, const int8_t* w,
                              const int32_t* rowsum, const float* scale, float* y, lep_i64 ldy, lep_i64 n) {
    if (nb == LEP_W8A8_NB) {
        LEP_W8A8_ROWS(LEP_W8A8_NB, w, rowsum, scale, y, n)
        return;
    }
    for (int b = 0; b < nb; ++b) {
        LEP_W8A8_ROWS(1, w + b * LEP_STEP, rowsum + b * LEP_PANEL, scale + b * LEP_PANEL, y + b * LEP_PANEL,
                      n - b * LEP_PANEL)
    }
}

/* row m of x as unsigned bytes round(x * 127 / max|row|) + 128, padded with 128 (zero) to ldq bytes;
   xs[m] = max|row| / 127 (1 / 127 for a row of zeros or one holding NaN, as the reference has it) */
static void lep_quantize_row(const float* xr, lep_i64 K, uint8_t* q, lep_i64 ldq, float* xs) {
    float amax = 0.0f;
    int nan = 0;
#if defined(__AVX512F__)
    __m512 vmax = _mm512_setzero_ps();
    __mmask16 unordered = 0;
    for (lep_i64 k = 0; k < K; k += 16) {
        const __m512 v = _mm512_maskz_loadu_ps(K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1),
                                               xr + k);
        unordered |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        vmax = _mm512_max_ps(vmax, _mm512_abs_ps(v));
    }
    amax = _mm512_reduce_max_ps(vmax);
    nan = unordered != 0;
#else
    #pragma omp simd reduction(max:amax) reduction(|:nan)
    for (lep_i64 k = 0; k < K; ++k) {
        const float a = fabsf(xr[k]);
        amax = a > amax ? a : amax;
        nan |= a != a;
    }
#endif
    if (nan || !(amax > 0.0f)) amax = 1.0f;
    const float inv = 127.0f / amax;
#if defined(__AVX512F__)
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127), offset = _mm512_set1_epi32(128);
    for (lep_i64 k = 0; k < K; k += 16) {  /* rounds to nearest even, as nearbyintf does */
        const __mmask16 in = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
        const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(in, xr + k), _mm512_set1_ps(inv)));
        _mm512_mask_cvtepi32_storeu_epi8(q + k, in, _mm512_add_epi32(_mm512_max_epi32(_mm512_min_epi32(v, hi), lo), offset));
    }
#else
    #pragma omp simd
    for (lep_i64 k = 0; k < K; ++k) {
        float v = nearbyintf(xr[k] * inv);
        v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
        q[k] = (uint8_t)((int)v + 128);
    }
#endif
    for (lep_i64 j = K; j < ldq; ++j) q[j] = 128;
    *xs = amax / 127.0f;
}

/* y[M, N] = (q(x) @ w[N, K].T) * x_scale * scale[N], w in the int8 layout with one group (row sums after the
   panels), scale in panels; scratch holds M * 4 * ceil(K / 4) bytes and M floats */
static void lep_matmul_w8a8(const float* x, const void* wv, const float* scale, lep_i64 M, lep_i64 N, lep_i64 K,
                            float* y, void* scratch, lep_epilogue ep, const void* epctx) {
    const lep_i64 P = (N + LEP_PANEL - 1) / LEP_PANEL, ldq = (K + 3) / 4 * 4, steps = ldq / 4;
    const int32_t* rowsum = (const int32_t*)lep_panel(wv, steps, (P + LEP_UNIT - 1) / LEP_UNIT * LEP_UNIT);
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
                lep_w8a8_dispatch(mb, nb, xq + m0 * ldq, ldq, xs + m0, (const int8_t*)lep_panel(wv, steps, p0),
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

/* ---------------------------------------------------------------- static W8A8: qlinear_conv, qlinear_matmul */

/* Rows of uint8 activations (x, with a zero point) times int8 weights in the int8 layout above (one group:
   the row sums after the steps), summed exactly in int32 per tile of rows by one panel of 16 channels:
     AVX-512 VNNI: vpdpbusd, x as its unsigned operand as it is, 4 rows a tile;
     AVX2, weights in [-64, 64] (`pairs`: the quantize pass's reduce_range): vpmaddubsw on the 4 bytes of x of
       a step broadcast and each 32 bytes of the step's weights (8 channels by 4 inputs): pairs of products of
       at most 255 * 64 each, so the int16 pair sums never saturate; vpmaddwd by ones sums each channel's two
       pairs in int32; 3 rows a tile;
     AVX2, any int8 weights: the 4 bytes of x of a step widened to 16-bit and broadcast, each 16 bytes of a
       step's weights (4 channels by 4 inputs) widened to 16-bit, vpmaddwd (pairs of products of at most 255 *
       128: no saturation, unlike vpmaddubsw), the pair sums added horizontally at the end; 2 rows a tile;
     else plain C.
   Then each sum becomes (acc - x_zero_point * rowsum + bias) in int64, times x_scale * w_scale in f32, and
   is stored as f32 or requantized to uint8 (round half to even, clip), as ir/ops/qlinear.py defines it. */

#if defined(LEP_VNNI)
#define LEP_Q8_MB 4
#elif defined(__AVX2__)
#define LEP_Q8_MB 2
#define LEP_Q8_PAIRS 1  /* the vpmaddubsw path for weights in [-64, 64] */
#else
#define LEP_Q8_MB 2
#endif
#if defined(LEP_Q8_PAIRS)
#define LEP_Q8P_MB 3    /* rows a tile of the pairs path */
#define LEP_Q8_TILE_ROWS 3
#else
#define LEP_Q8_TILE_ROWS LEP_Q8_MB
#endif
#define LEP_Q8_CHUNK 48 /* rows of x (or output pixels) a thread takes at a time: whole tiles on every path */

/* bytes of an int8 layout of N rows of K inputs, row sums included */
static inline lep_i64 lep_q8_layout_bytes(lep_i64 N, lep_i64 K) {
    const lep_i64 units = (N + LEP_PANEL * LEP_UNIT - 1) / (LEP_PANEL * LEP_UNIT);
    return units * ((K + 3) / 4) * LEP_USTEP + units * LEP_UNIT * LEP_PANEL * (lep_i64)sizeof(int32_t);
}

/* The rows of x that a tile multiplies: row m's K inputs are nseg runs of kseg bytes (kseg a multiple of 4
   when nseg > 1), run s at rp[m] + s * seg_stride. One run: rows of a matrix, or gathered windows; KH runs: the
   kernel rows of a conv's windows read in place from its padded input. Step c of the weights is step c % ceil(
   kseg / 4) of run c / ceil(kseg / 4). */
struct lep_q8_a {
    const uint8_t* const* rp;
    lep_i64 nseg, seg_stride, kseg;
};

static inline uint32_t lep_u32(const uint8_t* p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint32_t lep_u32_part(const uint8_t* p, lep_i64 n) {  /* n < 4 bytes, zeros above */
    uint32_t v = 0;
    memcpy(&v, p, (size_t)n);
    return v;
}

/* Runs STEP(X) for every step of the weights, c its index: X, an expression of the row m, is that step's 4
   bytes of x of row m (zeros past a run's end); the rows' pointers r_ stay in registers. */
#define LEP_Q8_WALK(A, MB, STEP)                                                                     \
    do {                                                                                              \
        const uint8_t* r_[LEP_Q8_TILE_ROWS];                                                          \
        for (int m = 0; m < (MB); ++m) r_[m] = (A)->rp[m];                                            \
        const lep_i64 kseg_ = (A)->kseg;                                                              \
        lep_i64 c = 0;                                                                                \
        for (lep_i64 s_ = 0; s_ < (A)->nseg; ++s_) {                                                  \
            lep_i64 b_ = 0;                                                                           \
            for (; b_ + 4 <= kseg_; b_ += 4, ++c) STEP(lep_u32(r_[m] + b_))                           \
            if (b_ < kseg_) {                                                                         \
                STEP(lep_u32_part(r_[m] + b_, kseg_ - b_))                                            \
                ++c;                                                                                  \
            }                                                                                         \
            for (int m = 0; m < (MB); ++m) r_[m] += (A)->seg_stride;                                  \
        }                                                                                             \
    } while (0)

/* acc[m][j] = sum over the inputs k of row m of A times w(channel j of the panel, k), for m < MB */
static inline __attribute__((always_inline)) void lep_q8_tile(const int MB, const struct lep_q8_a* A,
                                                              const unsigned char* w,
                                                              int32_t acc[LEP_Q8_TILE_ROWS][LEP_PANEL]) {
#if defined(LEP_VNNI)
    __m512i s[LEP_Q8_MB];
    for (int m = 0; m < MB; ++m) s[m] = _mm512_setzero_si512();
#define LEP_Q8_BODY(X)                                                                                   \
    {                                                                                                 \
        const __m512i wv = _mm512_loadu_si512(w + c * LEP_USTEP);                                     \
        for (int m = 0; m < MB; ++m) s[m] = _mm512_dpbusd_epi32(s[m], _mm512_set1_epi32((int)(X)), wv); \
    }
    LEP_Q8_WALK(A, MB, LEP_Q8_BODY);
#undef LEP_Q8_BODY
    for (int m = 0; m < MB; ++m) _mm512_storeu_si512(acc[m], s[m]);
#elif defined(__AVX2__)
    __m256i s[LEP_Q8_MB][4];
    for (int m = 0; m < MB; ++m)
        for (int h = 0; h < 4; ++h) s[m][h] = _mm256_setzero_si256();
#define LEP_Q8_BODY(X)                                                                                   \
    {                                                                                                 \
        __m256i xv[LEP_Q8_MB];                                                                        \
        for (int m = 0; m < MB; ++m) xv[m] = _mm256_cvtepu8_epi16(_mm_set1_epi32((int)(X)));          \
        for (int h = 0; h < 4; ++h) {                                                                 \
            const __m256i wv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(w + c * LEP_USTEP + 16 * h))); \
            for (int m = 0; m < MB; ++m) s[m][h] = _mm256_add_epi32(s[m][h], _mm256_madd_epi16(wv, xv[m])); \
        }                                                                                             \
    }
    LEP_Q8_WALK(A, MB, LEP_Q8_BODY);
#undef LEP_Q8_BODY
    for (int m = 0; m < MB; ++m) {  /* lanes 2i, 2i + 1 of s[m][h] are channel 4h + i: add them, in order */
        const __m256i lo = _mm256_permute4x64_epi64(_mm256_hadd_epi32(s[m][0], s[m][1]), 0xD8);
        const __m256i hi = _mm256_permute4x64_epi64(_mm256_hadd_epi32(s[m][2], s[m][3]), 0xD8);
        _mm256_storeu_si256((__m256i*)acc[m], lo);
        _mm256_storeu_si256((__m256i*)(acc[m] + 8), hi);
    }
#else
    for (int m = 0; m < MB; ++m)
        for (int j = 0; j < LEP_PANEL; ++j) acc[m][j] = 0;
#define LEP_Q8_BODY(X)                                                                                \
    for (int m = 0; m < MB; ++m) {                                                                    \
        const uint32_t x4 = (X);                                                                      \
        const int8_t* ws = (const int8_t*)w + c * LEP_USTEP;                                          \
        for (int j = 0; j < LEP_PANEL; ++j)                                                           \
            for (int i = 0; i < 4; ++i) acc[m][j] += (int32_t)((x4 >> (8 * i)) & 0xFF) * (int32_t)ws[4 * j + i]; \
    }
    LEP_Q8_WALK(A, MB, LEP_Q8_BODY);
#undef LEP_Q8_BODY
#endif
}

#if defined(LEP_Q8_PAIRS)
/* lep_q8_tile for weights in [-64, 64] on AVX2: vpmaddubsw (x unsigned, w signed; the pair sums stay within
   int16), then vpmaddwd by ones into int32; channels 0-7 in s[m][0], 8-15 in s[m][1], in order */
static inline __attribute__((always_inline)) void lep_q8p_tile(const int MB, const struct lep_q8_a* A,
                                                               const unsigned char* w,
                                                               int32_t acc[LEP_Q8_TILE_ROWS][LEP_PANEL]) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i s[LEP_Q8P_MB][2];
    for (int m = 0; m < MB; ++m) s[m][0] = s[m][1] = _mm256_setzero_si256();
#define LEP_Q8_BODY(X)                                                                                   \
    {                                                                                                 \
        const __m256i w0 = _mm256_loadu_si256((const __m256i*)(w + c * LEP_USTEP));                  \
        const __m256i w1 = _mm256_loadu_si256((const __m256i*)(w + c * LEP_USTEP + 32));             \
        for (int m = 0; m < MB; ++m) {                                                                \
            const __m256i xv = _mm256_set1_epi32((int)(X));                                           \
            s[m][0] = _mm256_add_epi32(s[m][0], _mm256_madd_epi16(_mm256_maddubs_epi16(xv, w0), ones)); \
            s[m][1] = _mm256_add_epi32(s[m][1], _mm256_madd_epi16(_mm256_maddubs_epi16(xv, w1), ones)); \
        }                                                                                             \
    }
    LEP_Q8_WALK(A, MB, LEP_Q8_BODY);
#undef LEP_Q8_BODY
    for (int m = 0; m < MB; ++m) {
        _mm256_storeu_si256((__m256i*)acc[m], s[m][0]);
        _mm256_storeu_si256((__m256i*)(acc[m] + 8), s[m][1]);
    }
}
#endif

/* where and how a qlinear op stores its results: y[m * ldy + n] for the n < N channels of this call, from
   off[n] = bias - x_zero_point * rowsum and mul[n] = x_scale * w_scale (lep_q8_channels, padded to panels) */
struct lep_q8_out {
    const int32_t* off; const float* mul; int u8; float ys; float yz; void* y; lep_i64 ldy;
};

/* off and mul of the N channels of weights w (K inputs), zeros up to whole panels; N + 15 entries each at most */
static void lep_q8_channels(const void* w, lep_i64 K, lep_i64 N, float xs, int32_t xz, const float* ws,
                            const int32_t* bias, int32_t* off, float* mul) {
    const lep_i64 P = (N + LEP_PANEL - 1) / LEP_PANEL, units = (P + LEP_UNIT - 1) / LEP_UNIT;
    const int32_t* rowsum = (const int32_t*)((const unsigned char*)w + units * ((K + 3) / 4) * LEP_USTEP);
    for (lep_i64 n = 0; n < P * LEP_PANEL; ++n) {
        off[n] = n < N ? bias[n] - xz * rowsum[n] : 0;
        mul[n] = n < N ? xs * ws[n] : 0.0f;
    }
}

static inline lep_vf lep_vround(lep_vf v) {  /* to nearest, ties to even (as nearbyintf) */
#if defined(__AVX512F__)
    return (lep_vf)_mm512_roundscale_ps((__m512)v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#elif defined(__AVX__)
    __m256 h[2];
    memcpy(h, &v, sizeof h);
    for (int i = 0; i < 2; ++i) h[i] = _mm256_round_ps(h[i], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    memcpy(&v, h, sizeof v);
    return v;
#else
    for (int j = 0; j < LEP_PANEL; ++j) v[j] = nearbyintf(v[j]);
    return v;
#endif
}

/* the results of row m for the nn channels from n0: off = bias - x_zero_point * rowsum and mul = x_scale *
   w_scale of those channels (the emitter checked that acc + off cannot leave int32) */
static inline void lep_q8_store(const struct lep_q8_out* o, const int32_t* acc, const int32_t* off, const float* mul,
                                lep_i64 m, lep_i64 n0, lep_i64 nn) {
    float* yf = (float*)o->y + m * o->ldy + n0;
    uint8_t* yq = (uint8_t*)o->y + m * o->ldy + n0;
#if defined(__AVX2__) && !defined(__AVX512F__)  /* two halves of 8 lanes (the generic 16-lane form spills) */
    __m256i q[2];
    float vf[LEP_PANEL];
    for (int h = 0; h < 2; ++h) {
        const __m256i t = _mm256_add_epi32(_mm256_loadu_si256((const __m256i*)(acc + 8 * h)),
                                           _mm256_loadu_si256((const __m256i*)(off + 8 * h)));
        const __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(t), _mm256_loadu_ps(mul + 8 * h));
        if (!o->u8) {
            _mm256_storeu_ps(vf + 8 * h, v);
            continue;
        }
        __m256 r = _mm256_round_ps(_mm256_div_ps(v, _mm256_set1_ps(o->ys)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        r = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r, _mm256_set1_ps(o->yz)), _mm256_setzero_ps()),
                          _mm256_set1_ps(255.0f));
        q[h] = _mm256_cvtps_epi32(r);
    }
    if (!o->u8) {
        memcpy(yf, vf, (size_t)lep_min(nn, LEP_PANEL) * sizeof(float));
        return;
    }
    /* packed to 16-bit, then bytes: groups of 4 lanes come out as 0-3, 8-11, 4-7, 12-15 */
    const __m256i p16 = _mm256_packus_epi32(q[0], q[1]);
    const __m128i p8 = _mm_shuffle_epi32(
        _mm_packus_epi16(_mm256_castsi256_si128(p16), _mm256_extracti128_si256(p16, 1)), _MM_SHUFFLE(3, 1, 2, 0));
    if (nn >= LEP_PANEL) _mm_storeu_si128((__m128i*)yq, p8);
    else memcpy(yq, &p8, (size_t)nn);
#else
    const lep_vf v = __builtin_convertvector(lep_vload_i(acc) + lep_vload_i(off), lep_vf) * lep_vload(mul);
    if (!o->u8) {
        lep_vstore(yf, v, nn);
        return;
    }
    const lep_vf q = lep_vround(v / lep_vsplat(o->ys)) + lep_vsplat(o->yz), top = lep_vsplat(255.0f);
    const lep_vi below = q < lep_vsplat(0.0f), above = q > top;  /* clipped to [0, 255] (0.0f is all zero bits) */
    const lep_vi qi = __builtin_convertvector((lep_vf)(((lep_vi)q & ~below & ~above) | ((lep_vi)top & above)),
                                             lep_vi);
#if defined(__AVX512F__)
    if (nn >= LEP_PANEL) {
        _mm_storeu_si128((__m128i*)yq, _mm512_cvtusepi32_epi8((__m512i)qi));
        return;
    }
#endif
    for (lep_i64 j = 0; j < lep_min(nn, LEP_PANEL); ++j) yq[j] = (uint8_t)qi[j];
#endif
}

/* rows [m0, m0 + mb) of y from the mb rows of A, mb <= LEP_Q8_TILE_ROWS, by one panel p of the weights w
   (`steps` steps a panel); the tile's row count a constant for each case */
static inline void lep_q8_block(const struct lep_q8_a* A, lep_i64 m0, int mb, const void* w, lep_i64 steps,
                                lep_i64 p, lep_i64 N, const struct lep_q8_out* o, int pairs) {
    int32_t acc[LEP_Q8_TILE_ROWS][LEP_PANEL];
    const unsigned char* wp = lep_panel(w, steps, p);
#define LEP_Q8_CASE(n, tile) case n: tile(n, A, wp, acc); break;
#if defined(LEP_Q8_PAIRS)
    if (pairs) {
        switch (mb) {
        LEP_Q8_CASE(1, lep_q8p_tile) LEP_Q8_CASE(2, lep_q8p_tile) LEP_Q8_CASE(3, lep_q8p_tile)
        default: lep_q8p_tile(LEP_Q8P_MB, A, wp, acc);
        }
    } else
#endif
    {
        (void)pairs;
        switch (mb) {
        LEP_Q8_CASE(1, lep_q8_tile)
#if LEP_Q8_MB > 2
        LEP_Q8_CASE(2, lep_q8_tile)
#endif
#if LEP_Q8_MB > 3
        LEP_Q8_CASE(3, lep_q8_tile)
#endif
        default: lep_q8_tile(LEP_Q8_MB, A, wp, acc);
        }
    }
#undef LEP_Q8_CASE
    const lep_i64 n0 = p * LEP_PANEL, nn = lep_min(LEP_PANEL, N - n0);
    for (int m = 0; m < mb; ++m) lep_q8_store(o, acc[m], o->off + n0, o->mul + n0, m0 + m, n0, nn);
}

/* rows [m0, m0 + rows) of y from the rows of A (rows <= LEP_Q8_CHUNK; K inputs in all) times the N-channel
   weights w, stored by o: tiles of rows by panels, on the calling thread */
static void lep_q8_rows(const struct lep_q8_a* A, lep_i64 m0, lep_i64 rows, lep_i64 K, const void* w, lep_i64 N,
                        const struct lep_q8_out* o, int pairs) {
    const lep_i64 P = (N + LEP_PANEL - 1) / LEP_PANEL, steps = (K + 3) / 4;
#if defined(LEP_Q8_PAIRS)
    const int MB = pairs ? LEP_Q8P_MB : LEP_Q8_MB;
#else
    const int MB = LEP_Q8_MB;
#endif
    for (lep_i64 m = 0; m < rows; m += MB) {
        const struct lep_q8_a tile = {A->rp + m, A->nseg, A->seg_stride, A->kseg};
        const int mb = (int)lep_min(MB, rows - m);
        for (lep_i64 p = 0; p < P; ++p) lep_q8_block(&tile, m0 + m, mb, w, steps, p, N, o, pairs);
    }
}

/* the rows [m0, m0 + n) of a matrix a (lda bytes apart) as the one-run rows of a lep_q8_a (rp: n entries) */
static inline struct lep_q8_a lep_q8_matrix(const uint8_t* a, lep_i64 lda, lep_i64 m0, lep_i64 n, lep_i64 K,
                                            const uint8_t** rp) {
    for (lep_i64 i = 0; i < n; ++i) rp[i] = a + (m0 + i) * lda;
    return (struct lep_q8_a){rp, 1, 0, K};
}

/* y[M, N] = qlinear_matmul(x[M, K], ...): ys NULL for an f32 result; pairs: w in [-64, 64]; scratch: the
   channels' off and mul */
static void lep_qlinear_matmul(const uint8_t* x, const float* xs, const uint8_t* xz, const void* w, const float* ws,
                               const int32_t* bias, const float* ys, const uint8_t* yz, void* y, lep_i64 M,
                               lep_i64 N, lep_i64 K, int pairs, void* scratch) {
    const lep_i64 padded = (N + LEP_PANEL - 1) / LEP_PANEL * LEP_PANEL;
    int32_t* off = (int32_t*)scratch;
    float* mul = (float*)(off + padded);
    lep_q8_channels(w, K, N, xs[0], xz[0], ws, bias, off, mul);
    const struct lep_q8_out o = {off, mul, ys != NULL, ys ? ys[0] : 1.0f, yz ? (float)yz[0] : 0.0f, y, N};
    const lep_i64 chunks = (M + LEP_Q8_CHUNK - 1) / LEP_Q8_CHUNK;
    #pragma omp parallel for schedule(static) if (M * N * K > 65536)
    for (lep_i64 c = 0; c < chunks; ++c) {
        const lep_i64 m0 = c * LEP_Q8_CHUNK, n = lep_min(LEP_Q8_CHUNK, M - m0);
        const uint8_t* rp[LEP_Q8_CHUNK];
        const struct lep_q8_a A = lep_q8_matrix(x, K, m0, n, K, rp);
        lep_q8_rows(&A, m0, n, K, w, N, &o, pairs);
    }
}

/* the shape of a channels-last qlinear_conv (lep_qlinear_conv's arguments) */
struct lep_q8_conv {
    lep_i64 H, W, C, OH, OW, KH, KW, sh, sw, dh, dw, ph, pw, G;
};

/* n bytes from src to dst, 16 at a time (the runs of a window are short: a libc call each would cost more) */
static inline void lep_copy_run(uint8_t* dst, const uint8_t* src, lep_i64 n) {
    for (; n >= 16; n -= 16, dst += 16, src += 16) memcpy(dst, src, 16);
    for (lep_i64 i = 0; i < n; ++i) dst[i] = src[i];
}

static inline void lep_fill_run(uint8_t* dst, uint8_t v, lep_i64 n) {
    for (lep_i64 i = 0; i < n; ++i) dst[i] = v;
}

/* the windows of output pixels [p0, p0 + count) (batch, row, column) for group g, gathered into rows of KH
   kernel rows kr = ceil(KW * C / G / 4) * 4 bytes apart (kernel column, channel; zeros after), ldq = KH * kr
   bytes apart from a; padding reads as the zero point xz. The pixel's position advances column by column (no
   divisions per pixel). */
static inline void lep_q8_gather(const uint8_t* x, uint8_t xz, const struct lep_q8_conv* c, lep_i64 g, lep_i64 p0,
                                 lep_i64 count, lep_i64 kr, lep_i64 ldq, uint8_t* a) {
    const lep_i64 Cg = c->C / c->G, run = c->KW * c->C, whole_rows = c->dw == 1 && c->G == 1;
    lep_i64 n = p0 / (c->OH * c->OW), oh = p0 / c->OW % c->OH, ow = p0 % c->OW;
    for (lep_i64 i = 0; i < count; ++i, a += ldq) {
        const lep_i64 w0 = ow * c->sw - c->pw, w1 = w0 + (c->KW - 1) * c->dw;
        const uint8_t* img = x + n * c->H * c->W * c->C;
        for (lep_i64 kh = 0; kh < c->KH; ++kh) {
            const lep_i64 h = oh * c->sh - c->ph + kh * c->dh;
            uint8_t* dst = a + kh * kr;
            lep_fill_run(dst + c->KW * Cg, 0, kr - c->KW * Cg);
            if (h >= 0 && h < c->H && w0 >= 0 && w1 < c->W && whole_rows) {
                lep_copy_run(dst, img + (h * c->W + w0) * c->C, run);  /* the kernel row's pixels, one run */
                continue;
            }
            for (lep_i64 kw = 0; kw < c->KW; ++kw, dst += Cg) {
                const lep_i64 wi = w0 + kw * c->dw;
                if (h < 0 || h >= c->H || wi < 0 || wi >= c->W) lep_fill_run(dst, xz, Cg);
                else lep_copy_run(dst, img + (h * c->W + wi) * c->C + g * Cg, Cg);
            }
        }
        if (++ow == c->OW) {
            ow = 0;
            if (++oh == c->OH) oh = 0, ++n;
        }
    }
}

/* x [B][H][W][C] into xp [B][Hp][Wp][C] at row ph, column pw, the rest the zero point xz (a worksharing loop) */
static void lep_q8_pad(const uint8_t* x, uint8_t xz, lep_i64 B, lep_i64 H, lep_i64 W, lep_i64 C, lep_i64 Hp,
                       lep_i64 Wp, lep_i64 ph, lep_i64 pw, uint8_t* xp) {
    #pragma omp for schedule(static)
    for (lep_i64 r = 0; r < B * Hp; ++r) {
        const lep_i64 n = r / Hp, h = r % Hp - ph;
        uint8_t* dst = xp + r * Wp * C;
        if (h < 0 || h >= H) {
            memset(dst, xz, (size_t)(Wp * C));
            continue;
        }
        memset(dst, xz, (size_t)(pw * C));
        memcpy(dst + pw * C, x + (n * H + h) * W * C, (size_t)(W * C));
        memset(dst + (pw + W) * C, xz, (size_t)((Wp - pw - W) * C));
    }
}

/* qlinear_conv channels-last: x [B][H][W][C] uint8, y [B][OH][OW][O], LEP_Q8_CHUNK output pixels at a time.
   The weights' inputs come kernel row by kernel row, each row's KW * C / G inputs padded with zero weights to
   whole steps (kr bytes: lay_out_conv), so that a step never spans two kernel rows:
     - a 1x1 conv of stride 1 and one group reads x as it is;
     - a conv of one group and no column dilation reads its windows in place, KH runs of kr bytes each (the
       bytes past a kernel row's KW * C meet zero weights), from a copy of x padded with the zero point
       (lep_q8_pad: Hp = max(H + ph, (OH - 1) * sh + (KH - 1) * dh + 1) rows, Wp = max(W + pw, (OW - 1) * sw +
       KW) columns, and 4 bytes more that the last run may read);
     - else, per group, the windows are gathered into rows of KH * kr bytes (lep_q8_gather) and multiplied
       while in cache.
   pairs: w in [-64, 64]. scratch: each group's channels' off and mul (lep_q8_channels), then the padded copy
   of x, or B * OH * OW * KH * kr bytes of gathered rows (each thread gathers into the rows of its own first
   chunk when every thread has one, else into those of the chunk at hand). */
static void lep_qlinear_conv(const uint8_t* x, const float* xs, const uint8_t* xz, const void* w, const float* ws,
                             const int32_t* bias, const float* ys, const uint8_t* yz, void* y, lep_i64 B,
                             lep_i64 H, lep_i64 W, lep_i64 C, lep_i64 OH, lep_i64 OW, lep_i64 O, lep_i64 KH,
                             lep_i64 KW, lep_i64 sh, lep_i64 sw, lep_i64 dh, lep_i64 dw, lep_i64 ph, lep_i64 pw,
                             lep_i64 G, int pairs, uint8_t* scratch) {
    const struct lep_q8_conv shape = {H, W, C, OH, OW, KH, KW, sh, sw, dh, dw, ph, pw, G};
    const lep_i64 M = B * OH * OW, Og = O / G, kr = (KW * (C / G) + 3) / 4 * 4, K = KH * kr, ldq = K;
    const int direct = KH == 1 && KW == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && G == 1 && OH == H && OW == W;
    const int in_place = !direct && G == 1 && dw == 1;
    const lep_i64 Hp = lep_max(H + ph, (OH - 1) * sh + (KH - 1) * dh + 1), Wp = lep_max(W + pw, (OW - 1) * sw + KW);
    const lep_i64 wbytes = lep_q8_layout_bytes(Og, K), padded = (Og + LEP_PANEL - 1) / LEP_PANEL * LEP_PANEL;
    int32_t* off = (int32_t*)scratch;
    float* mul = (float*)(off + G * padded);
    for (lep_i64 g = 0; g < G; ++g)
        lep_q8_channels((const unsigned char*)w + g * wbytes, K, Og, xs[0], xz[0], ws + g * Og, bias + g * Og,
                        off + g * padded, mul + g * padded);
    uint8_t* rows = (uint8_t*)(mul + G * padded);
    const lep_i64 chunks = (M + LEP_Q8_CHUNK - 1) / LEP_Q8_CHUNK;
    #pragma omp parallel if (M * O * K > 65536)
    {
        const int own = omp_get_num_threads() * LEP_Q8_CHUNK <= M;
        uint8_t* mine = rows + omp_get_thread_num() * LEP_Q8_CHUNK * ldq;
        if (in_place) lep_q8_pad(x, xz[0], B, H, W, C, Hp, Wp, ph, pw, rows);  /* (its barrier: all rows padded) */
        for (lep_i64 g = 0; g < G; ++g) {
            const struct lep_q8_out o = {off + g * padded, mul + g * padded, ys != NULL, ys ? ys[0] : 1.0f,
                                         yz ? (float)yz[0] : 0.0f,
                                         ys ? (void*)((uint8_t*)y + g * Og) : (void*)((float*)y + g * Og), O};
            const void* wg = (const unsigned char*)w + g * wbytes;
            #pragma omp for schedule(static) nowait
            for (lep_i64 c = 0; c < chunks; ++c) {
                const lep_i64 m0 = c * LEP_Q8_CHUNK, n = lep_min(LEP_Q8_CHUNK, M - m0);
                const uint8_t* rp[LEP_Q8_CHUNK];
                struct lep_q8_a A;
                if (direct) {
                    A = lep_q8_matrix(x, C, m0, n, C, rp);  /* (kr = C rounded up to whole steps) */
                } else if (in_place) {  /* each window's top left corner in the padded copy */
                    lep_i64 b = m0 / (OH * OW), oh = m0 / OW % OH, ow = m0 % OW;
                    for (lep_i64 i = 0; i < n; ++i) {
                        rp[i] = rows + ((b * Hp + oh * sh) * Wp + ow * sw) * C;
                        if (++ow == OW) {
                            ow = 0;
                            if (++oh == OH) oh = 0, ++b;
                        }
                    }
                    A = (struct lep_q8_a){rp, KH, dh * Wp * C, kr};
                } else {
                    uint8_t* a = own ? mine : rows + m0 * ldq;
                    lep_q8_gather(x, xz[0], &shape, g, m0, n, kr, ldq, a);
                    A = lep_q8_matrix(a, ldq, 0, n, K, rp);
                }
                lep_q8_rows(&A, m0, n, K, wg, Og, &o, pairs);
            }
        }
    }
}
