/* leptonc cpu kernels of the sparse matmuls; included in a model's source when it uses them.
 *
 * y[M, N] = x[M, K] @ W.T for a sparse weight W [N, K] stored as leptonc/ir/sparse.py describes:
 * BSR (values [blocks, BH, BW], block columns, block-row offsets; CSR is BSR with 1 x 1 blocks) or
 * N:M (values [N, kept], packed index fields). Values are f32, or i8 widened in registers and scaled
 * once per output (scale[n]). The generated kernel calls these with the block shape as literals, so
 * that the compiler specializes every loop to it.
 *
 * Two ways through a product, chosen by the number of rows M of x:
 *   - few rows (a GEMV, M < LEP_SP_GEMM_ROWS): a block row of W at a time, its values streamed once
 *     and multiplied with up to LEP_SP_MB rows of x; vectors run along the block's width (two 1x8
 *     blocks per AVX-512 register), or along its height for one-column blocks (8x1, 16x1, 32x1); other
 *     block shapes and CSR run scalar loops; 2:4 gathers the kept
 *     inputs of 8 groups with one permute (vpermt2ps) from the 2-bit index fields.
 *   - many rows (a GEMM): x is packed transposed in tiles of MR rows (xT[k][MR]), then every stored
 *     weight is broadcast and multiplied with MR rows of x at once, vectors along M: any block shape
 *     vectorizes, and the rows of a block share each load of x.
 * Threads take contiguous runs of block rows holding equal numbers of nonzeros (not equal numbers of
 * rows), so that uneven sparsity does not leave a thread idle.
 *
 * Vectors are AVX-512 where the compiler targets it, else AVX2, else plain C (preprocessor).
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define LEP_SP_AVX512 1
#define LEP_SP_VW 16
#define LEP_SP_REGS 32
typedef __m512 lep_spv;
#define lep_spv_zero() _mm512_setzero_ps()
#define lep_spv_set1(a) _mm512_set1_ps(a)
#define lep_spv_load(p) _mm512_loadu_ps(p)
#define lep_spv_store(p, v) _mm512_storeu_ps(p, v)
#define lep_spv_fma(a, b, c) _mm512_fmadd_ps(a, b, c)
#define lep_spv_add(a, b) _mm512_add_ps(a, b)
#define lep_spv_sum(v) _mm512_reduce_add_ps(v)
#define lep_spv_load_i8(p) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(p))))
#elif defined(__AVX2__) && defined(__FMA__)
#define LEP_SP_VW 8
#define LEP_SP_REGS 16
typedef __m256 lep_spv;
#define lep_spv_zero() _mm256_setzero_ps()
#define lep_spv_set1(a) _mm256_set1_ps(a)
#define lep_spv_load(p) _mm256_loadu_ps(p)
#define lep_spv_store(p, v) _mm256_storeu_ps(p, v)
#define lep_spv_fma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define lep_spv_add(a, b) _mm256_add_ps(a, b)
#define lep_spv_load_i8(p) _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(p))))
static inline float lep_spv_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
#else
#define LEP_SP_VW 1
#define LEP_SP_REGS 16
typedef float lep_spv;
#define lep_spv_zero() 0.0f
#define lep_spv_set1(a) (a)
#define lep_spv_load(p) (*(p))
#define lep_spv_store(p, v) (*(p) = (v))
#define lep_spv_fma(a, b, c) ((a) * (b) + (c))
#define lep_spv_add(a, b) ((a) + (b))
#define lep_spv_sum(v) (v)
#define lep_spv_load_i8(p) ((float)*(const int8_t*)(p))
#endif

#define LEP_SP_MB 4            /* rows of x that share one pass over a block row (GEMV way) */
#define LEP_SP_GEMM_ROWS 8     /* from this many rows of x on, the GEMM way */
#define LEP_SP_MV_MAX 8        /* vectors of rows of x per GEMM tile, at most */

/* value i of a values array of f32 (i8 = 0) or i8 (i8 = 1); column index i of u16 (i32 = 0) or i32 */
static inline float lep_sp_val(const void* v, int64_t i, int i8) {
    return i8 ? (float)((const int8_t*)v)[i] : ((const float*)v)[i];
}
static inline lep_spv lep_sp_vals(const void* v, int64_t i, int i8) {
    return i8 ? lep_spv_load_i8((const int8_t*)v + i) : lep_spv_load((const float*)v + i);
}
#if defined(__AVX2__) && defined(__FMA__)
#define LEP_SP_HAS8 1  /* 8-wide float vectors (AVX2, or AVX-512's lower halves) */
static inline __m256 lep_sp_vals8(const void* v, int64_t i, int i8) {
    return i8 ? _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)((const int8_t*)v + i))))
              : _mm256_loadu_ps((const float*)v + i);
}
#endif
static inline int64_t lep_sp_col(const void* c, int64_t i, int i32) {
    return i32 ? (int64_t)((const int32_t*)c)[i] : (int64_t)((const uint16_t*)c)[i];
}

/* The kernel's fused ops, run on each finished block [i0, i1) x [j0, j1) of y (gemm.c's lep_epilogue; the
   blocks partition y, and calls run concurrently on the threads of the team). */
typedef void (*lep_sp_epilogue)(const void* ctx, float* y, int64_t ldy, int64_t i0, int64_t i1, int64_t j0,
                                int64_t j1);
typedef struct { float* y; int64_t ldy; lep_sp_epilogue ep; const void* ctx; } lep_sp_out;

static inline void lep_sp_finish(const lep_sp_out* out, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    if (out->ep && i1 > i0 && j1 > j0) out->ep(out->ctx, out->y, out->ldy, i0, i1, j0, j1);
}

/* where thread t of T starts in n block rows: the first row whose preceding cost reaches t / T of the total,
   a row costing its stored values plus one (so that empty rows still count a little) */
static inline int64_t lep_sp_cut(const int32_t* rows, int64_t n, int64_t per_block, int t, int T) {
    if (t <= 0) return 0;
    if (t >= T) return n;
    const int64_t target = ((int64_t)rows[n] * per_block + n) * t / T;
    int64_t a = 0, b = n;
    while (a < b) {
        const int64_t mid = (a + b) / 2;
        if ((int64_t)rows[mid] * per_block + mid < target) a = mid + 1; else b = mid;
    }
    return a;
}

/* ---------------------------------------------------------------- BSR, few rows of x */

/* acc[m] += block b's row i times MB rows of x, vectors along the block's width */
static inline __attribute__((always_inline)) void lep_bsr_dot(
        lep_spv* acc, const float* x, int64_t ldx, int64_t b, int i, const void* vals, int i8, const void* cols,
        int i32, const int MB, const int BH, const int BW) {
    const int64_t c = lep_sp_col(cols, b, i32) * BW;
    for (int q = 0; q < BW; q += LEP_SP_VW) {
        const lep_spv w = lep_sp_vals(vals, (b * BH + i) * BW + q, i8);
        for (int m = 0; m < MB; ++m) acc[m] = lep_spv_fma(w, lep_spv_load(x + m * ldx + c + q), acc[m]);
    }
}

#if defined(LEP_SP_AVX512)
/* the same for two 8-wide blocks b, b + 1 in one register */
static inline __attribute__((always_inline)) void lep_bsr_dot_pair(
        __m512* acc, const float* x, int64_t ldx, int64_t b, int i, const void* vals, int i8, const void* cols,
        int i32, const int MB, const int BH) {
    const int64_t c0 = lep_sp_col(cols, b, i32) * 8, c1 = lep_sp_col(cols, b + 1, i32) * 8;
    const __m512 w = BH == 1 ? lep_sp_vals(vals, b * 8, i8)
        : _mm512_insertf32x8(_mm512_castps256_ps512(lep_sp_vals8(vals, (b * BH + i) * 8, i8)),
                             lep_sp_vals8(vals, ((b + 1) * BH + i) * 8, i8), 1);
    for (int m = 0; m < MB; ++m) {
        const float* xm = x + m * ldx;
        const __m512 xv = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(xm + c0)),
                                             _mm256_loadu_ps(xm + c1), 1);
        acc[m] = _mm512_fmadd_ps(w, xv, acc[m]);
    }
}
#endif

/* block rows [r0, r1) of W times MB rows of x (stride ldx) into y (stride ldy) */
static inline __attribute__((always_inline)) void lep_bsr_gemv_rows(
        const float* x, int64_t ldx, int64_t r0, int64_t r1, const void* vals, int i8, const void* cols, int i32,
        const int32_t* rows, const float* scale, float* y, int64_t ldy, const int MB, const int BH, const int BW) {
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t b0 = rows[r], b1 = rows[r + 1];
        float* yr = y + r * BH;
        const float* sr = scale ? scale + r * BH : NULL;
#if LEP_SP_VW > 1
        if (BW % LEP_SP_VW == 0 || (LEP_SP_VW == 16 && BW == 8)) {
            for (int i = 0; i < BH; ++i) {  /* two sets of accumulators: two chains of FMAs in flight */
                lep_spv acc0[LEP_SP_MB], acc1[LEP_SP_MB];
                for (int m = 0; m < MB; ++m) acc0[m] = acc1[m] = lep_spv_zero();
                int64_t b = b0;
#if defined(LEP_SP_AVX512)
                if (BW == 8) {
                    for (; b + 4 <= b1; b += 4) {
                        lep_bsr_dot_pair(acc0, x, ldx, b, i, vals, i8, cols, i32, MB, BH);
                        lep_bsr_dot_pair(acc1, x, ldx, b + 2, i, vals, i8, cols, i32, MB, BH);
                    }
                    if (b + 2 <= b1) {
                        lep_bsr_dot_pair(acc0, x, ldx, b, i, vals, i8, cols, i32, MB, BH);
                        b += 2;
                    }
                    if (b < b1) {  /* the last block alone, in the low half */
                        const int64_t c = lep_sp_col(cols, b, i32) * 8;
                        const __m512 w = _mm512_zextps256_ps512(lep_sp_vals8(vals, (b * BH + i) * 8, i8));
                        for (int m = 0; m < MB; ++m)
                            acc1[m] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(0xFF, x + m * ldx + c), acc1[m]);
                    }
                } else
#endif
                {
                    for (; b + 2 <= b1; b += 2) {
                        lep_bsr_dot(acc0, x, ldx, b, i, vals, i8, cols, i32, MB, BH, BW);
                        lep_bsr_dot(acc1, x, ldx, b + 1, i, vals, i8, cols, i32, MB, BH, BW);
                    }
                    if (b < b1) lep_bsr_dot(acc0, x, ldx, b, i, vals, i8, cols, i32, MB, BH, BW);
                }
                for (int m = 0; m < MB; ++m)
                    yr[m * ldy + i] = lep_spv_sum(lep_spv_add(acc0[m], acc1[m])) * (sr ? sr[i] : 1.0f);
            }
            continue;
        }
#endif
#if defined(LEP_SP_HAS8)
        if (BW == 1 && BH % 8 == 0 && BH <= 32) {  /* 8-wide vectors down a one-column block */
            __m256 acc[LEP_SP_MB * 4];
            for (int m = 0; m < MB; ++m)
                for (int q = 0; q < BH / 8; ++q) acc[m * 4 + q] = _mm256_setzero_ps();
            for (int64_t b = b0; b < b1; ++b) {
                const int64_t c = lep_sp_col(cols, b, i32);
                for (int q = 0; q < BH / 8; ++q) {
                    const __m256 w = lep_sp_vals8(vals, b * BH + q * 8, i8);
                    for (int m = 0; m < MB; ++m)
                        acc[m * 4 + q] = _mm256_fmadd_ps(w, _mm256_set1_ps(x[m * ldx + c]), acc[m * 4 + q]);
                }
            }
            float tmp[8];
            for (int m = 0; m < MB; ++m)
                for (int q = 0; q < BH / 8; ++q) {
                    _mm256_storeu_ps(tmp, acc[m * 4 + q]);
                    for (int l = 0; l < 8; ++l) yr[m * ldy + q * 8 + l] = tmp[l] * (sr ? sr[q * 8 + l] : 1.0f);
                }
            continue;
        }
#endif
#if defined(LEP_SP_AVX512)
        if (BH == 1 && BW == 1) {  /* CSR: 16 values at a time, their inputs gathered */
            __m512 acc[LEP_SP_MB];
            for (int m = 0; m < MB; ++m) acc[m] = _mm512_setzero_ps();
            for (int64_t b = b0; b < b1; b += 16) {
                const __mmask16 k = b1 - b >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (b1 - b)) - 1);
                const __m512i c = i32 ? _mm512_maskz_loadu_epi32(k, (const int32_t*)cols + b)
                                      : _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, (const uint16_t*)cols + b));
                const __m512 w = i8 ? _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                          _mm_maskz_loadu_epi8(k, (const int8_t*)vals + b)))
                                    : _mm512_maskz_loadu_ps(k, (const float*)vals + b);
                for (int m = 0; m < MB; ++m)
                    acc[m] = _mm512_fmadd_ps(w, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, c, x + m * ldx, 4),
                                             acc[m]);
            }
            for (int m = 0; m < MB; ++m) yr[m * ldy] = _mm512_reduce_add_ps(acc[m]) * (sr ? sr[0] : 1.0f);
            continue;
        }
        if ((BW == 2 || BW == 4) && (BH * BW) % 16 == 0 && BH * BW <= 64) {
            /* a block's values as 16-wide vectors, each against 16 / BW copies of the block's BW inputs */
            __m512 acc[LEP_SP_MB][4];
            for (int m = 0; m < MB; ++m)
                for (int q = 0; q < BH * BW / 16; ++q) acc[m][q] = _mm512_setzero_ps();
            for (int64_t b = b0; b < b1; ++b) {
                const int64_t c = lep_sp_col(cols, b, i32) * BW;
                for (int m = 0; m < MB; ++m) {
                    const float* xc = x + m * ldx + c;
                    const __m512 xv = BW == 4 ? _mm512_broadcast_f32x4(_mm_loadu_ps(xc))
                                              : _mm512_broadcast_f32x2(_mm_castpd_ps(_mm_load_sd((const double*)xc)));
                    for (int q = 0; q < BH * BW / 16; ++q)
                        acc[m][q] = _mm512_fmadd_ps(lep_sp_vals(vals, b * BH * BW + q * 16, i8), xv, acc[m][q]);
                }
            }
            float tmp[64];
            for (int m = 0; m < MB; ++m) {
                for (int q = 0; q < BH * BW / 16; ++q) _mm512_storeu_ps(tmp + q * 16, acc[m][q]);
                for (int i = 0; i < BH; ++i) {
                    float s = 0.0f;
                    for (int j = 0; j < BW; ++j) s += tmp[i * BW + j];
                    yr[m * ldy + i] = s * (sr ? sr[i] : 1.0f);
                }
            }
            continue;
        }
#endif
        for (int m = 0; m < MB; ++m)  /* any other block shape: scalar */
            for (int i = 0; i < BH; ++i) {
                const float* xm = x + m * ldx;
                float s = 0.0f;
                for (int64_t b = b0; b < b1; ++b) {
                    const int64_t c = lep_sp_col(cols, b, i32) * BW;
                    for (int j = 0; j < BW; ++j) s += lep_sp_val(vals, (b * BH + i) * BW + j, i8) * xm[c + j];
                }
                yr[m * ldy + i] = s * (sr ? sr[i] : 1.0f);
            }
    }
}

/* ---------------------------------------------------------------- packing x for the GEMM way */

/* xT tiles: tile t holds rows [t * MR, t * MR + MR) of x transposed, [K][MR], rows past M as zeros */
static void lep_sp_pack(const float* x, int64_t M, int64_t K, int64_t MR, float* xt) {
    const int64_t tiles = (M + MR - 1) / MR;
    #pragma omp for schedule(static)
    for (int64_t tk = 0; tk < tiles * ((K + 63) / 64); ++tk) {
        const int64_t t = tk % tiles, k0 = (tk / tiles) * 64, k1 = k0 + 64 < K ? k0 + 64 : K;
        float* dst = xt + t * K * MR;
        for (int64_t l = 0; l < MR; ++l) {
            const int64_t m = t * MR + l;
            if (m < M) {
                const float* src = x + m * K;
                for (int64_t k = k0; k < k1; ++k) dst[k * MR + l] = src[k];
            } else {
                for (int64_t k = k0; k < k1; ++k) dst[k * MR + l] = 0.0f;
            }
        }
    }
}

/* The GEMM way computes outputs as vectors along rows of x, a column of y each: it collects them in
   yt (output o at yt[o * MR]) and writes LEP_SP_YT (16) or more adjacent outputs of each row of y at
   once, whole cache lines, rather than one value per row of y (a stride of N floats, which maps every
   store of a tile to the same cache set). */
#define LEP_SP_YT 16
#define LEP_SP_YT_MAX 64

static inline __attribute__((always_inline)) void lep_sp_collect(
        float* yt, int64_t MR, int64_t o, const lep_spv* acc, const int RB, const int MV) {
    for (int i = 0; i < RB; ++i)
        for (int q = 0; q < MV; ++q) lep_spv_store(yt + (o + i) * MR + q * LEP_SP_VW, acc[i * MV + q]);
}

/* collected outputs [n0, n0 + count) into rows m0 .. m0 + valid of y, scaled; then the fused ops there */
static inline void lep_sp_flush(const float* yt, int64_t MR, int64_t count, int64_t m0, int64_t valid, int64_t n0,
                                const float* scale, const lep_sp_out* out) {
    for (int64_t l = 0; l < valid; ++l) {
        float* yl = out->y + (m0 + l) * out->ldy + n0;
        if (scale)
            for (int64_t c = 0; c < count; ++c) yl[c] = yt[c * MR + l] * scale[n0 + c];
        else
            for (int64_t c = 0; c < count; ++c) yl[c] = yt[c * MR + l];
    }
    lep_sp_finish(out, m0, m0 + valid, n0, n0 + count);
}

/* ---------------------------------------------------------------- BSR, many rows of x */

/* one tile of MV * VW rows of x (xt: [K][MR]) times block rows [r0, r1), RB rows of a block at a time */
static inline __attribute__((always_inline)) void lep_bsr_gemm_tile(
        const float* xt, int64_t MR, int64_t valid, int64_t r0, int64_t r1, const void* vals, int i8,
        const void* cols, int i32, const int32_t* rows, const float* scale, const lep_sp_out* out, int64_t m0,
        const int BH, const int BW, const int RB, const int MV) {
    float yt[LEP_SP_YT_MAX * LEP_SP_MV_MAX * LEP_SP_VW];
    const int RC = BH >= LEP_SP_YT ? 1 : LEP_SP_YT / BH;  /* block rows per write to y */
    for (int64_t r = r0; r < r1; r += RC) {
        const int64_t re = r + RC < r1 ? r + RC : r1;
        for (int64_t rr = r; rr < re; ++rr) {
            const int64_t b0 = rows[rr], b1 = rows[rr + 1];
            for (int i0 = 0; i0 < BH; i0 += RB) {
                lep_spv acc[6 * LEP_SP_MV_MAX];  /* RB * MV of them in use */
                for (int a = 0; a < RB * MV; ++a) acc[a] = lep_spv_zero();
                for (int64_t b = b0; b < b1; ++b) {
                    const float* xc = xt + lep_sp_col(cols, b, i32) * BW * MR;
                    for (int j = 0; j < BW; ++j) {
                        lep_spv xv[LEP_SP_MV_MAX];
                        for (int q = 0; q < MV; ++q) xv[q] = lep_spv_load(xc + j * MR + q * LEP_SP_VW);
                        for (int i = 0; i < RB; ++i) {
                            const lep_spv w = lep_spv_set1(lep_sp_val(vals, (b * BH + i0 + i) * BW + j, i8));
                            for (int q = 0; q < MV; ++q) acc[i * MV + q] = lep_spv_fma(w, xv[q], acc[i * MV + q]);
                        }
                    }
                }
                if (BH <= LEP_SP_YT_MAX) {
                    lep_sp_collect(yt, MR, (rr - r) * BH + i0, acc, RB, MV);
                } else {  /* taller blocks than yt holds: write this block row's outputs right away */
                    lep_sp_collect(yt, MR, 0, acc, RB, MV);
                    lep_sp_flush(yt, MR, RB, m0, valid, rr * BH + i0, scale, out);
                }
            }
        }
        if (BH <= LEP_SP_YT_MAX) lep_sp_flush(yt, MR, (re - r) * BH, m0, valid, r * BH, scale, out);
    }
}

/* ---------------------------------------------------------------- N:M */

/* the `bits`-bit index field j of a row's meta bytes */
static inline int64_t lep_nm_field(const uint8_t* meta, int64_t j, const int bits) {
    return (meta[(j * bits) >> 3] >> ((j * bits) & 7)) & ((1 << bits) - 1);
}

#if defined(LEP_SP_AVX512)
/* acc[m] += 16 kept values of a 2:4 row (8 groups, 32 inputs from input 2j on) times MB rows of x: the
   2-bit fields become lane indices into the 32 inputs, which one permute (vpermt2ps) gathers */
static inline __attribute__((always_inline)) void lep_nm24_dot16(
        __m512* acc, const float* x, int64_t ldx, const void* vals, int64_t v0, const uint8_t* mt, int64_t j,
        int i8, const int MB) {
    const __m512i shifts = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i base = _mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28);
    uint32_t bits;
    memcpy(&bits, mt + j / 4, 4);
    const __m512i idx = _mm512_add_epi32(
        _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32((int)bits), shifts), _mm512_set1_epi32(3)), base);
    const __m512 w = lep_sp_vals(vals, v0 + j, i8);
    for (int m = 0; m < MB; ++m) {
        const float* xg = x + m * ldx + 2 * j;
        acc[m] = _mm512_fmadd_ps(w, _mm512_permutex2var_ps(_mm512_loadu_ps(xg), idx, _mm512_loadu_ps(xg + 16)),
                                 acc[m]);
    }
}
#endif

/* rows [n0, n1) of W (kept values per row, N_ of every M_ inputs) times MB rows of x */
static inline __attribute__((always_inline)) void lep_nm_gemv_rows(
        const float* x, int64_t ldx, int64_t n0, int64_t n1, const void* vals, int i8, const uint8_t* meta,
        int64_t kept, int64_t mw, const float* scale, float* y, int64_t ldy, const int MB, const int N_,
        const int M_, const int BITS) {
    for (int64_t r = n0; r < n1; ++r) {
        const uint8_t* mt = meta + r * mw;
        float out[LEP_SP_MB];
        for (int m = 0; m < MB; ++m) out[m] = 0.0f;
        int64_t j = 0;
#if defined(LEP_SP_AVX512)
        if (N_ == 2 && M_ == 4) {
            __m512 acc0[LEP_SP_MB], acc1[LEP_SP_MB];
            for (int m = 0; m < MB; ++m) acc0[m] = acc1[m] = _mm512_setzero_ps();
            for (; j + 32 <= kept; j += 32) {
                lep_nm24_dot16(acc0, x, ldx, vals, r * kept, mt, j, i8, MB);
                lep_nm24_dot16(acc1, x, ldx, vals, r * kept, mt, j + 16, i8, MB);
            }
            if (j + 16 <= kept) {
                lep_nm24_dot16(acc0, x, ldx, vals, r * kept, mt, j, i8, MB);
                j += 16;
            }
            for (int m = 0; m < MB; ++m) out[m] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[m], acc1[m]));
        }
#endif
        for (; j < kept; ++j) {
            const float w = lep_sp_val(vals, r * kept + j, i8);
            const int64_t c = (j / N_) * M_ + lep_nm_field(mt, j, BITS);
            for (int m = 0; m < MB; ++m) out[m] += w * x[m * ldx + c];
        }
        for (int m = 0; m < MB; ++m) y[m * ldy + r] = out[m] * (scale ? scale[r] : 1.0f);
    }
}

static inline __attribute__((always_inline)) void lep_nm_gemm_tile(
        const float* xt, int64_t MR, int64_t valid, int64_t n0, int64_t n1, const void* vals, int i8,
        const uint8_t* meta, int64_t kept, int64_t mw, const float* scale, const lep_sp_out* out, int64_t m0,
        const int N_, const int M_, const int BITS, const int MV) {
    float yt[LEP_SP_YT * LEP_SP_MV_MAX * LEP_SP_VW];
    for (int64_t r0 = n0; r0 < n1; r0 += LEP_SP_YT) {
        const int64_t re = r0 + LEP_SP_YT < n1 ? r0 + LEP_SP_YT : n1;
        for (int64_t r = r0; r < re; ++r) {
            const uint8_t* mt = meta + r * mw;
            lep_spv acc[LEP_SP_MV_MAX];
            for (int q = 0; q < MV; ++q) acc[q] = lep_spv_zero();
            for (int64_t j = 0; j < kept; ++j) {
                const lep_spv w = lep_spv_set1(lep_sp_val(vals, r * kept + j, i8));
                const float* xc = xt + ((j / N_) * M_ + lep_nm_field(mt, j, BITS)) * MR;
                for (int q = 0; q < MV; ++q) acc[q] = lep_spv_fma(w, lep_spv_load(xc + q * LEP_SP_VW), acc[q]);
            }
            lep_sp_collect(yt, MR, r - r0, acc, 1, MV);
        }
        lep_sp_flush(yt, MR, re - r0, m0, valid, r0, scale, out);
    }
}

/* ---------------------------------------------------------------- drivers
 *
 * A driver is one thread's share of a product, called by every thread of a parallel region that the
 * macro LEP_BSR_MATMUL / LEP_NM_MATMUL opens at the call site (there the block shape and types are
 * literals, which the compiler propagates into the region's outlined body). Few rows of x: the GEMV
 * way, LEP_SP_MB rows at a time. Many rows: x packed into `scratch` ((M + MR) * K floats), then tiles
 * of MR = MV * VW rows, as equal as the vector width allows.
 */
#define LEP_SP_ROWS(GEMV, n0, n1)                                                                  \
    for (int64_t m = 0; m < M; m += LEP_SP_MB) {                                                   \
        const int mb = M - m < LEP_SP_MB ? (int)(M - m) : LEP_SP_MB;                               \
        switch (mb) {                                                                              \
        case 1: GEMV(1); break;                                                                    \
        case 2: GEMV(2); break;                                                                    \
        case 3: GEMV(3); break;                                                                    \
        default: GEMV(4); break;                                                                   \
        }                                                                                          \
        lep_sp_finish(&out, m, m + mb, n0, n1);                                                    \
    }

#define LEP_SP_TILES(MV_, TILE)                                                                     \
    for (int64_t m0 = 0; m0 < M; m0 += mr)                                                         \
        TILE(scratch + m0 * K, (M - m0 < mr ? M - m0 : mr), MV_)

/* tiles of equal size, at most MVMAX vectors of rows each: mv vectors (mr = mv * VW rows) per tile */
#define LEP_SP_TILING(MVMAX)                                                                       \
    const int64_t tiles_ = (M + (MVMAX) * LEP_SP_VW - 1) / ((MVMAX) * LEP_SP_VW);                  \
    const int mv = (int)(((M + tiles_ - 1) / tiles_ + LEP_SP_VW - 1) / LEP_SP_VW);                 \
    const int64_t mr = (int64_t)mv * LEP_SP_VW

/* every tile size up to MVMAX, each a specialization of TILE */
#define LEP_SP_DISPATCH(MVMAX, TILE)                                                               \
    switch (mv) {                                                                                  \
    case 8: if ((MVMAX) >= 8) LEP_SP_TILES(8, TILE); break;                                         \
    case 7: if ((MVMAX) >= 7) LEP_SP_TILES(7, TILE); break;                                         \
    case 6: if ((MVMAX) >= 6) LEP_SP_TILES(6, TILE); break;                                         \
    case 5: if ((MVMAX) >= 5) LEP_SP_TILES(5, TILE); break;                                         \
    case 4: if ((MVMAX) >= 4) LEP_SP_TILES(4, TILE); break;                                         \
    case 3: if ((MVMAX) >= 3) LEP_SP_TILES(3, TILE); break;                                         \
    case 2: if ((MVMAX) >= 2) LEP_SP_TILES(2, TILE); break;                                         \
    default: LEP_SP_TILES(1, TILE); break;                                                         \
    }

/* rows of a block whose accumulators stay in registers (a divisor of BH, at most 6), and vectors of
   rows of x per tile for them */
#define LEP_SP_RB(BH) ((BH) % 6 == 0 ? 6 : (BH) % 5 == 0 ? 5 : (BH) % 4 == 0 ? 4 : (BH) % 3 == 0 ? 3 : \
                       (BH) % 2 == 0 ? 2 : 1)
#define LEP_SP_MV(RB) ((LEP_SP_REGS - 6) / ((RB) + 1) > LEP_SP_MV_MAX ? LEP_SP_MV_MAX : \
                       (LEP_SP_REGS - 6) / ((RB) + 1))

#define LEP_BSR_GEMV(MB_) lep_bsr_gemv_rows(x + m * K, K, lo, hi, vals, i8, cols, i32, rows, scale, y + m * N, \
                                            N, MB_, BH, BW)
#define LEP_BSR_TILE(xt_, left_, MV_) lep_bsr_gemm_tile(xt_, mr, left_, lo, hi, vals, i8, cols, i32, rows, \
                                                        scale, &out, m0, BH, BW, RB, MV_)

/* y[M, N] = x[M, K] @ W.T, W in BSR with BH x BW blocks: this thread's share */
static inline __attribute__((always_inline)) void lep_bsr_share(
        const float* x, int64_t M, int64_t K, int64_t N, const void* vals, int i8, const void* cols, int i32,
        const int32_t* rows, const float* scale, float* y, float* scratch, lep_sp_epilogue ep, const void* ctx,
        const int BH, const int BW) {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t nbr = N / BH;
    const int64_t lo = lep_sp_cut(rows, nbr, BH * BW, t, T), hi = lep_sp_cut(rows, nbr, BH * BW, t + 1, T);
    const lep_sp_out out = {y, N, ep, ctx};
    if (M < LEP_SP_GEMM_ROWS) {
        LEP_SP_ROWS(LEP_BSR_GEMV, lo * BH, hi * BH)
        return;
    }
    const int RB = LEP_SP_RB(BH);
    LEP_SP_TILING(LEP_SP_MV(RB));
    lep_sp_pack(x, M, K, mr, scratch);  /* an omp for: ends with a barrier */
    LEP_SP_DISPATCH(LEP_SP_MV(RB), LEP_BSR_TILE)
}

#define LEP_BSR_MATMUL(x, M, K, N, vals, i8, cols, i32, rows, scale, y, scratch, ep, ctx, BH, BW)            \
    do {                                                                                                  \
        const int64_t work_ = (int64_t)(rows)[(N) / (BH)] * (BH) * (BW) * (M) + (N) * (M);               \
        if ((M) > 0 && (N) > 0) {                                                                         \
            _Pragma("omp parallel if (work_ > 65536)")                                                    \
            lep_bsr_share(x, M, K, N, vals, i8, cols, i32, rows, scale, y, scratch, ep, ctx, BH, BW);     \
        }                                                                                                 \
    } while (0)

#define LEP_NM_GEMV(MB_) lep_nm_gemv_rows(x + m * K, K, lo, hi, vals, i8, meta, kept, mw, scale, y + m * N, N, \
                                          MB_, N_, M_, BITS)
#define LEP_NM_TILE(xt_, left_, MV_) lep_nm_gemm_tile(xt_, mr, left_, lo, hi, vals, i8, meta, kept, mw, scale, \
                                                      &out, m0, N_, M_, BITS, MV_)

/* y[M, N] = x[M, K] @ W.T, W keeping N_ of every M_ inputs (BITS-bit index fields): this thread's share */
static inline __attribute__((always_inline)) void lep_nm_share(
        const float* x, int64_t M, int64_t K, int64_t N, const void* vals, int i8, const uint8_t* meta,
        const float* scale, float* y, float* scratch, lep_sp_epilogue ep, const void* ctx, const int N_,
        const int M_, const int BITS) {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t kept = K / M_ * N_, mw = (kept * BITS + 7) / 8;
    const int64_t lo = N * t / T, hi = N * (t + 1) / T;  /* every row holds the same number of values */
    const lep_sp_out out = {y, N, ep, ctx};
    if (M < LEP_SP_GEMM_ROWS) {
        LEP_SP_ROWS(LEP_NM_GEMV, lo, hi)
        return;
    }
    LEP_SP_TILING(LEP_SP_MV_MAX);
    lep_sp_pack(x, M, K, mr, scratch);
    LEP_SP_DISPATCH(LEP_SP_MV_MAX, LEP_NM_TILE)
}

#define LEP_NM_MATMUL(x, M, K, N, vals, i8, meta, scale, y, scratch, ep, ctx, N_, M_, BITS)                 \
    do {                                                                                                  \
        const int64_t work_ = (int64_t)(K) / (M_) * (N_) * (N) * (M) + (N) * (M);                        \
        if ((M) > 0 && (N) > 0) {                                                                         \
            _Pragma("omp parallel if (work_ > 65536)")                                                    \
            lep_nm_share(x, M, K, N, vals, i8, meta, scale, y, scratch, ep, ctx, N_, M_, BITS);            \
        }                                                                                                 \
    } while (0)

/* ---------------------------------------------------------------- sparse convolution (conv_bsr) */

/* y[B, O, OH, OW] = conv(x[B, C, H, W]) channels-first, the weight stored as W [O, CG * KH * KW] in BSR (a
   block row within one group of OG = O / G outputs). No im2col: each image is copied once, zero padded,
   into scratch (unless the conv has no padding), and a stored column k of W (channel c, tap kh, kw) is an
   offset into its group's channels, off[k] = (c * HP + kh * DH) * WP + kw * DW, so that output pixel
   (oh, ow) reads xp[off[k] + oh * SH * WP + ow * SW]. A tile is RB rows of a block row times V output
   rows times one vector of output columns (masked at the row's end): each load of x serves RB outputs,
   each broadcast weight V vectors. Threads take (image, block row) pairs; the bias starts the sums, and
   the fused ops run on each finished block row of an image. */

#if defined(LEP_SP_AVX512)
static inline lep_spv lep_spv_loadn(const float* p, int n) {
    return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);
}
static inline void lep_spv_storen(float* p, lep_spv v, int n) {
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), v);
}
#elif LEP_SP_VW == 8
static inline __m256i lep_sp_mask8(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline lep_spv lep_spv_loadn(const float* p, int n) { return _mm256_maskload_ps(p, lep_sp_mask8(n)); }
static inline void lep_spv_storen(float* p, lep_spv v, int n) { _mm256_maskstore_ps(p, lep_sp_mask8(n), v); }
#else
static inline lep_spv lep_spv_loadn(const float* p, int n) { (void)n; return *p; }
static inline void lep_spv_storen(float* p, lep_spv v, int n) { (void)n; *p = v; }
#endif

/* n <= VW output columns' inputs, SW apart */
static inline __attribute__((always_inline)) lep_spv lep_sp_conv_load(const float* p, int n, const int SW) {
    if (SW == 1) return n == LEP_SP_VW ? lep_spv_load(p) : lep_spv_loadn(p, n);
    float t[LEP_SP_VW];
    for (int l = 0; l < LEP_SP_VW; ++l) t[l] = l < n ? p[l * SW] : 0.0f;
    return lep_spv_load(t);
}

/* outputs i0 .. i0 + RB of block row r (yo: the row's first output plane) at rows oh0 .. oh0 + V, columns
   ow0 .. ow0 + n */
static inline __attribute__((always_inline)) void lep_conv_bsr_tile(
        const float* xg, const int64_t* off, int64_t WP, int64_t oh0, int64_t ow0, int n, int64_t b0, int64_t b1,
        int i0, const float* vals, const void* cols, int i32, const float* bias, float* yo, int64_t OH,
        int64_t OW, const int BH, const int BW, const int RB, const int V, const int SH, const int SW) {
    lep_spv acc[8 * 6];  /* RB * V of them in use */
    for (int i = 0; i < RB; ++i)
        for (int v = 0; v < V; ++v) acc[i * V + v] = bias ? lep_spv_set1(bias[i0 + i]) : lep_spv_zero();
    const float* xo = xg + oh0 * SH * WP + ow0 * SW;
    for (int64_t b = b0; b < b1; ++b) {
        const int64_t* ok = off + lep_sp_col(cols, b, i32) * BW;
        for (int j = 0; j < BW; ++j) {
            lep_spv xv[6];
            for (int v = 0; v < V; ++v) xv[v] = lep_sp_conv_load(xo + ok[j] + v * SH * WP, n, SW);
            for (int i = 0; i < RB; ++i) {
                const lep_spv w = lep_spv_set1(vals[(b * BH + i0 + i) * BW + j]);
                for (int v = 0; v < V; ++v) acc[i * V + v] = lep_spv_fma(w, xv[v], acc[i * V + v]);
            }
        }
    }
    for (int i = 0; i < RB; ++i)
        for (int v = 0; v < V; ++v) {
            float* yp = yo + ((i0 + i) * OH + oh0 + v) * OW + ow0;
            if (n == LEP_SP_VW) lep_spv_store(yp, acc[i * V + v]); else lep_spv_storen(yp, acc[i * V + v], n);
        }
}

/* rows a block row's tile holds: RB outputs of the block (up to 8), V output rows (RB * V + V + 1 registers) */
#define LEP_CONV_RB(BH) ((BH) <= 8 ? (BH) : (BH) % 8 == 0 ? 8 : (BH) % 4 == 0 ? 4 : (BH) % 2 == 0 ? 2 : 1)
#define LEP_CONV_V(RB) ((RB) == 1 ? 6 : (RB) == 2 ? 4 : (RB) <= 4 ? 2 : 1)

static inline __attribute__((always_inline)) void lep_conv_bsr_share(
        const float* x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t O, int64_t OH, int64_t OW,
        const float* vals, const void* cols, int i32, const int32_t* rows, const float* bias, float* y,
        void* scratch, lep_sp_epilogue ep, const void* ctx, const int KH, const int KW, const int SH, const int SW,
        const int PT, const int PL, const int PB, const int PR, const int DH, const int DW, const int G,
        const int BH, const int BW) {
    const int64_t CG = C / G, OG = O / G, K = CG * KH * KW, HP = H + PT + PB, WP = W + PL + PR, nbr = O / BH;
    const int padded = PT || PL || PB || PR;
    int64_t* off = (int64_t*)scratch;
    float* xpad = (float*)(off + K);
    #pragma omp for schedule(static)
    for (int64_t k = 0; k < K; ++k) {
        const int64_t c = k / (KH * KW), t = k % (KH * KW);
        off[k] = (c * HP + t / KW * DH) * WP + t % KW * DW;
    }
    if (padded) {
        #pragma omp for schedule(static)
        for (int64_t bc = 0; bc < B * C; ++bc) {
            float* dst = xpad + bc * HP * WP;
            const float* src = x + bc * H * W;
            for (int64_t h = 0; h < HP; ++h) {
                float* d = dst + h * WP;
                if (h < PT || h >= PT + H) {
                    for (int64_t w = 0; w < WP; ++w) d[w] = 0.0f;
                    continue;
                }
                for (int64_t w = 0; w < PL; ++w) d[w] = 0.0f;
                for (int64_t w = 0; w < W; ++w) d[PL + w] = src[(h - PT) * W + w];
                for (int64_t w = PL + W; w < WP; ++w) d[w] = 0.0f;
            }
        }
    }
    const float* xs = padded ? xpad : x;
    const int RB = LEP_CONV_RB(BH), V = LEP_CONV_V(RB);
    const lep_sp_out out = {y, OW, ep, ctx};
    #pragma omp for schedule(static)
    for (int64_t task = 0; task < B * nbr; ++task) {
        const int64_t img = task / nbr, r = task % nbr, o0 = r * BH;
        const float* xg = xs + (img * C + o0 / OG * CG) * HP * WP;
        float* yo = y + (img * O + o0) * OH * OW;
        const float* bo = bias ? bias + o0 : NULL;
        for (int i0 = 0; i0 < BH; i0 += RB)
            for (int64_t ow0 = 0; ow0 < OW; ow0 += LEP_SP_VW) {
                const int n = OW - ow0 < LEP_SP_VW ? (int)(OW - ow0) : LEP_SP_VW;
                int64_t oh0 = 0;
                for (; oh0 + V <= OH; oh0 += V)
                    lep_conv_bsr_tile(xg, off, WP, oh0, ow0, n, rows[r], rows[r + 1], i0, vals, cols, i32, bo, yo,
                                      OH, OW, BH, BW, RB, V, SH, SW);
                for (; oh0 < OH; ++oh0)
                    lep_conv_bsr_tile(xg, off, WP, oh0, ow0, n, rows[r], rows[r + 1], i0, vals, cols, i32, bo, yo,
                                      OH, OW, BH, BW, RB, 1, SH, SW);
            }
        lep_sp_finish(&out, (img * O + o0) * OH, (img * O + o0 + BH) * OH, 0, OW);
    }
}

#define LEP_CONV_BSR(x, B, C, H, W, O, OH, OW, vals, cols, i32, rows, bias, y, scratch, ep, ctx, KH, KW, SH, SW,   \
                     PT, PL, PB, PR, DH, DW, G, BH, BW)                                                      \
    do {                                                                                                  \
        const int64_t work_ = (int64_t)(rows)[(O) / (BH)] * (BH) * (BW) * (B) * (OH) * (OW);             \
        if ((B) > 0 && (O) > 0 && (OH) > 0 && (OW) > 0) {                                                 \
            _Pragma("omp parallel if (work_ > 65536)")                                                    \
            lep_conv_bsr_share(x, B, C, H, W, O, OH, OW, vals, cols, i32, rows, bias, y, scratch, ep, ctx,  \
                               KH, KW, SH, SW, PT, PL, PB, PR, DH, DW, G, BH, BW);                        \
        }                                                                                                 \
    } while (0)
