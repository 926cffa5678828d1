/* leptonc packed GEMM: C[M, N] = A[M, K] @ B[K, N] in fp32, with B packed ahead of time (at compile time
 * for weights) and an optional epilogue applied to each block of C as soon as it holds its final values,
 * while the block is still in cache. Included in a model's source when a kernel uses it.
 *
 *   typedef void (*lep_epilogue)(const void* ctx, float* C, int64_t ldc,
 *                                int64_t i0, int64_t i1, int64_t j0, int64_t j1);
 *   void lep_gemm_packed(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
 *                        const float* Bp, float* C, int64_t ldc, lep_epilogue ep, const void* ctx);
 *   void lep_pack_b(int64_t K, int64_t N, const float* B, int64_t ldb, float* Bp);
 *   void lep_gemm_a(M, N, K, const lep_a_rows* a, Bp, const float* bias, const float* clamp, C, ldc, ep, ctx);
 *     the same product plus bias[j] on every row (when bias is not NULL), then clamped to [clamp[0], clamp[1]]
 *     (when clamp is not NULL; NaN stays NaN), before the epilogue, with A's rows described by `a`:
 *     a matrix, or a function that packs them (a convolution's im2col rows), strips of which may also be
 *     read in place (lep_view_a_fn) instead of packed
 *
 * Contract of lep_gemm_packed
 *   - A is row-major: element (i, k) at A[i * lda + k]. M is any run-time size (one library serves every M).
 *   - Bp is B[K, N] in the packed layout below (leptonc.codegen.cpu.matmul.pack_b at compile time, or
 *     lep_pack_b at run time); the caller passes the same N and K it was packed with.
 *   - C is row-major, (i, j) at C[i * ldc + j]. It is written, never read first (beta = 0): it may hold
 *     anything on entry, and may be the memory of an operand the epilogue reads elementwise (in place).
 *   - ep, when not NULL, is called as ep(ctx, C, ldc, i0, i1, j0, j1) for blocks [i0, i1) x [j0, j1) that
 *     partition C (each element in exactly one call), after the block holds A @ B. Calls run on any thread
 *     of the team, concurrently with each other; an epilogue reads and writes its own block only (and, at
 *     the same positions, arrays of C's shape; broadcast operands freely). Typical blocks: up to 16 rows
 *     by up to 512 columns.
 *   - Threads: the OpenMP team, C cut into tiles of rows x panels that the threads take as they go (one per
 *     thread); inside a parallel region (or for small products) it runs on the calling thread alone. The
 *     result is the same bits whatever the number of threads.
 *   - K = 0 gives C = 0 (then the epilogue). M = 0 or N = 0 does nothing.
 *
 * Packed layout (the same on every ISA, so packed weights in an artifact stay valid where its library is
 * rebuilt): panels of LEP_GEMM_NR = 32 columns; panel p holds columns [32p, 32p + 32) as K rows of 32
 * floats, element (k, 32p + c) at Bp[(p * K + k) * 32 + c]; columns past N are zero. ceil(N / 32) panels,
 * lep_packed_size(K, N) floats in all.
 *
 * Inside (BLIS-style): each tile is a rectangle of C (rows x whole panels). For each block of KC of
 * the K dim its thread packs its rows of A into micro-panels of MR rows (k-major), then, for each group of NCP
 * panels (a KC x NCP*32 block of B that stays in L2), runs the register-blocked micro-kernel (MR rows x 32
 * columns, accumulators in registers, the A micro-panel in L1) across the group, and hands the finished
 * MR-row strip of the group to the epilogue. Few rows (a GEMV and the like) take K in one block, so each
 * thread streams its panels of B from memory once, front to back. A strip that its lep_a_rows can show in
 * place (rows of the input itself, lep_view_a_fn) is not packed: on AVX-512 the micro-kernel broadcasts A
 * from those rows directly (as a direct convolution does), elsewhere the strip is packed from them.
 */
#include <immintrin.h>

#define LEP_GEMM_NR 32

#ifndef LEP_GEMM_KC
#define LEP_GEMM_KC 1024 /* K dim of a block: one pass over C for K <= 1024 (measured: 768..3072 alike) */
#endif
#ifndef LEP_GEMM_NCP
#define LEP_GEMM_NCP 2 /* panels per group: a KC x NCP*32 block of B, reused by every strip from L2 */
#endif
#ifndef LEP_GEMM_PFD
#define LEP_GEMM_PFD 1024 /* floats of B ahead that the first strip of a block prefetches (from memory) */
#endif
#define LEP_GEMM_L1_FLOATS 6144 /* the most floats of A one micro-panel should take in L1 (24 KiB) */
#ifndef LEP_GEMM_L2_FLOATS
#define LEP_GEMM_L2_FLOATS 65536 /* the most floats of B a block may take to run every strip across all its panels */
#endif

typedef void (*lep_epilogue)(const void* ctx, float* C, int64_t ldc, int64_t i0, int64_t i1, int64_t j0,
                             int64_t j1);

static inline int64_t lep_packed_size(int64_t K, int64_t N) {
    return (N + LEP_GEMM_NR - 1) / LEP_GEMM_NR * LEP_GEMM_NR * K;
}

/* B[K, N] (row k at B + k * ldb) into the packed layout. */
static void lep_pack_b(int64_t K, int64_t N, const float* B, int64_t ldb, float* Bp) {
    const int64_t P = (N + LEP_GEMM_NR - 1) / LEP_GEMM_NR;
    #pragma omp parallel for schedule(static) if (K * N > 65536 && !omp_in_parallel())
    for (int64_t p = 0; p < P; ++p) {
        const int64_t j0 = p * LEP_GEMM_NR, w = N - j0 < LEP_GEMM_NR ? N - j0 : LEP_GEMM_NR;
        for (int64_t k = 0; k < K; ++k) {
            float* dst = Bp + (p * K + k) * LEP_GEMM_NR;
            const float* src = B + k * ldb + j0;
            for (int64_t c = 0; c < w; ++c) dst[c] = src[c];
            for (int64_t c = w; c < LEP_GEMM_NR; ++c) dst[c] = 0.0f;
        }
    }
}

/* Rows of the micro-kernel (a strip of C), per ISA. */
#if defined(__AVX512F__)
#ifndef LEP_GEMM_MR
#define LEP_GEMM_MR 8
#endif
#elif defined(__AVX2__) && defined(__FMA__)
#define LEP_GEMM_MR 6
#else
#define LEP_GEMM_MR 4
#endif

/* A strip of A (its rows i < mr, the columns of one K block) read in place rather than packed: up to
   LEP_A_SEGS segments, each giving `len` consecutive columns, from column `k` of the block on, of every row i
   at row[i][0 .. len) (a convolution's kernel rows: a run of KW * C floats of the input per output pixel). */
#define LEP_A_SEGS 8
typedef struct {
    int64_t k, len;
    const float* row[LEP_GEMM_MR];
} lep_a_seg;

/* v clamped to [clamp[0], clamp[1]] when clamp is not NULL (NaN stays NaN). */
static inline float lep_gemm_clamp(float v, const float* clamp) {
    if (!clamp) return v;
    v = v < clamp[0] ? clamp[0] : v;
    return v > clamp[1] ? clamp[1] : v;
}

/* ------------------------------------------------------------------ micro-kernels
 * lep_ukr_strip(mr, kc, a, nseg, seg, b, bstride, np, c, ldc, ncols, first, bias, clamp, pf): for each of np
 * panels (b advancing by bstride floats), C[0:mr, 32q : 32q + 32] (= A @ b_q, plus bias when `first` and bias
 * is not NULL; += A @ b_q otherwise; then clamped when clamp is not NULL) with A the packed a[kc x mr, k-major]
 * or, when nseg > 0 (AVX-512 only), the
 * segments seg read in place; only the first `ncols` columns of the strip stored. mr is a constant in every
 * instance (the switch below), so the accumulators live in registers. */
#if defined(__AVX512F__)
static inline __mmask16 lep_gemm_mask(int64_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* Rows [0, mr) of a 32-column tile from accumulators c0 (columns 0..15) and c1 (16..31) into c, the first
   `ncols` columns stored: = (plus bias) when `first`, += otherwise; then clamped when clamp is not NULL. */
static inline __attribute__((always_inline)) void lep_ukr_store(const int mr, __m512* c0, __m512* c1, float* restrict c,
                                                                int64_t ldc, int64_t ncols, int first,
                                                                const float* bias, const float* clamp) {
    const __mmask16 m0 = lep_gemm_mask(ncols), m1 = lep_gemm_mask(ncols - 16);
    if (first && bias) {
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, bias), b1 = _mm512_maskz_loadu_ps(m1, bias + 16);
        #pragma GCC unroll 16
        for (int i = 0; i < mr; ++i) {
            c0[i] = _mm512_add_ps(c0[i], b0);
            c1[i] = _mm512_add_ps(c1[i], b1);
        }
    }
    if (!first && ncols >= LEP_GEMM_NR) {
        #pragma GCC unroll 16
        for (int i = 0; i < mr; ++i) {
            c0[i] = _mm512_add_ps(c0[i], _mm512_loadu_ps(c + i * ldc));
            c1[i] = _mm512_add_ps(c1[i], _mm512_loadu_ps(c + i * ldc + 16));
        }
    } else if (!first) {
        #pragma GCC unroll 16
        for (int i = 0; i < mr; ++i) {
            c0[i] = _mm512_add_ps(c0[i], _mm512_maskz_loadu_ps(m0, c + i * ldc));
            c1[i] = _mm512_add_ps(c1[i], _mm512_maskz_loadu_ps(m1, c + i * ldc + 16));
        }
    }
    if (clamp) {  /* max(lo, v), min(hi, v): v when v is NaN */
        const __m512 lo = _mm512_set1_ps(clamp[0]), hi = _mm512_set1_ps(clamp[1]);
        #pragma GCC unroll 16
        for (int i = 0; i < mr; ++i) {
            c0[i] = _mm512_min_ps(hi, _mm512_max_ps(lo, c0[i]));
            c1[i] = _mm512_min_ps(hi, _mm512_max_ps(lo, c1[i]));
        }
    }
    if (ncols >= LEP_GEMM_NR) {
        #pragma GCC unroll 16
        for (int i = 0; i < mr; ++i) {
            float* ci = c + i * ldc;
            _mm512_storeu_ps(ci, c0[i]);
            _mm512_storeu_ps(ci + 16, c1[i]);
        }
    } else {
        #pragma GCC unroll 16
        for (int i = 0; i < mr; ++i) {
            float* ci = c + i * ldc;
            _mm512_mask_storeu_ps(ci, m0, c0[i]);
            _mm512_mask_storeu_ps(ci + 16, m1, c1[i]);
        }
    }
}

/* One k step of a tile: row i of A times a row of B (bk) into the accumulators of nv vectors of 16 columns. */
#define LEP_UKR_STEP(AI)                                                                                  \
    {                                                                                                     \
        if (pf) { _mm_prefetch((const char*)(bk + pf), _MM_HINT_T0); _mm_prefetch((const char*)(bk + pf + 16), _MM_HINT_T0); } \
        const __m512 b0 = _mm512_loadu_ps(bk), b1 = nv > 1 ? _mm512_loadu_ps(bk + 16) : b0;            \
        _Pragma("GCC unroll 16")                                                                          \
        for (int i = 0; i < mr; ++i) {                                                                    \
            const __m512 ai = _mm512_set1_ps(AI);                                                         \
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);                                                       \
            if (nv > 1) c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);                                           \
        }                                                                                                 \
    }

/* One 32-column tile of C from nv vectors of 16 columns (nv = 1 when the tile has 16 columns or fewer: the
   panel's zero half is skipped), A packed: a k-major micro-panel. */
static inline __attribute__((always_inline)) void lep_ukr_tile(const int mr, const int nv, int64_t kc,
                                                               const float* restrict a, const float* restrict b,
                                                               float* restrict c, int64_t ldc, int64_t ncols,
                                                               int first, const float* bias, const float* clamp,
                                                               int64_t pf) {
    __m512 c0[LEP_GEMM_MR], c1[LEP_GEMM_MR];
    #pragma GCC unroll 16
    for (int i = 0; i < mr; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
    const float* ak = a;
    const float* bk = b;
    #pragma GCC unroll 4
    for (int64_t k = 0; k < kc; ++k, ak += mr, bk += LEP_GEMM_NR) LEP_UKR_STEP(ak[i])
    lep_ukr_store(mr, c0, c1, c, ldc, ncols, first, bias, clamp);
}

/* lep_ukr_tile with A read in place: nseg segments, each giving its rows' elements k = seg[s].k ..
   seg[s].k + seg[s].len - 1 of the block at seg[s].row[i][0 ..]. */
static inline __attribute__((always_inline)) void lep_ukr_tile_rows(const int mr, const int nv, int nseg,
                                                                    const lep_a_seg* seg, const float* restrict b,
                                                                    float* restrict c, int64_t ldc, int64_t ncols,
                                                                    int first, const float* bias,
                                                                    const float* clamp, int64_t pf) {
    __m512 c0[LEP_GEMM_MR], c1[LEP_GEMM_MR];
    #pragma GCC unroll 16
    for (int i = 0; i < mr; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int s = 0; s < nseg; ++s) {
        const float* r[LEP_GEMM_MR];
        #pragma GCC unroll 16
        for (int i = 0; i < mr; ++i) r[i] = seg[s].row[i];
        const float* bk = b + seg[s].k * LEP_GEMM_NR;
        const int64_t len = seg[s].len;
        #pragma GCC unroll 4
        for (int64_t k = 0; k < len; ++k, bk += LEP_GEMM_NR) LEP_UKR_STEP(r[i][k])
    }
    lep_ukr_store(mr, c0, c1, c, ldc, ncols, first, bias, clamp);
}
#undef LEP_UKR_STEP

/* mr rows of C across np panels (b advancing by bstride floats per panel), A packed (a) or, when nseg > 0, read
   in place (segments seg). */
#define LEP_GEMM_READS_ROWS 1
static inline __attribute__((always_inline)) void lep_ukr_strip(const int mr, int64_t kc, const float* restrict a,
                                                                int nseg, const lep_a_seg* seg,
                                                                const float* restrict b, int64_t bstride,
                                                                int64_t np, float* restrict c, int64_t ldc,
                                                                int64_t ncols, int first, const float* bias,
                                                                const float* clamp, int64_t pf) {
    if (nseg) {
        for (int64_t q = 0; q < np; ++q, b += bstride, c += LEP_GEMM_NR, ncols -= LEP_GEMM_NR) {
            const float* bq = bias ? bias + q * LEP_GEMM_NR : NULL;
            if (ncols > 16) lep_ukr_tile_rows(mr, 2, nseg, seg, b, c, ldc, ncols, first, bq, clamp, pf);
            else lep_ukr_tile_rows(mr, 1, nseg, seg, b, c, ldc, ncols, first, bq, clamp, pf);
        }
        return;
    }
    for (int64_t q = 0; q < np; ++q, b += bstride, c += LEP_GEMM_NR, ncols -= LEP_GEMM_NR) {
        const float* bq = bias ? bias + q * LEP_GEMM_NR : NULL;
        if (ncols > 16) lep_ukr_tile(mr, 2, kc, a, b, c, ldc, ncols, first, bq, clamp, pf);
        else lep_ukr_tile(mr, 1, kc, a, b, c, ldc, ncols, first, bq, clamp, pf);
    }
}
#elif defined(__AVX2__) && defined(__FMA__)

/* 6 rows x 16 columns (half a panel) per pass: 12 accumulators, 2 for B, 1 broadcast of the 16 ymm */
static inline __attribute__((always_inline)) void lep_ukr_strip(const int mr, int64_t kc, const float* restrict a,
                                                                int nseg, const lep_a_seg* seg,
                                                                const float* restrict b, int64_t bstride,
                                                                int64_t np, float* restrict c, int64_t ldc,
                                                                int64_t ncols, int first, const float* bias,
                                                                const float* clamp, int64_t pf) {
    (void)nseg; (void)seg;  /* packed A only */
    for (int64_t h = 0; h < 2 * np; ++h, ncols -= 16) {
        const float* bh = b + (h >> 1) * bstride + (h & 1) * 16;
        float* ch = c + h * 16;
        if (ncols <= 0) break;
        __m256 c0[LEP_GEMM_MR], c1[LEP_GEMM_MR];
        #pragma GCC unroll 8
        for (int i = 0; i < mr; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
        const float* ak = a;
        const float* bk = bh;
        #pragma GCC unroll 4
        for (int64_t k = 0; k < kc; ++k, ak += mr, bk += LEP_GEMM_NR) {
            const __m256 b0 = _mm256_loadu_ps(bk), b1 = _mm256_loadu_ps(bk + 8);
            #pragma GCC unroll 8
            for (int i = 0; i < mr; ++i) {
                const __m256 ai = _mm256_broadcast_ss(ak + i);
                c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
                c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
            }
        }
        float tile[LEP_GEMM_MR][16];
        #pragma GCC unroll 8
        for (int i = 0; i < mr; ++i) {
            _mm256_storeu_ps(tile[i], c0[i]);
            _mm256_storeu_ps(tile[i] + 8, c1[i]);
        }
        const int64_t w = ncols < 16 ? ncols : 16;
        const float* bh_ = first && bias ? bias + h * 16 : NULL;
        for (int i = 0; i < mr; ++i)
            for (int64_t j = 0; j < w; ++j)
                ch[i * ldc + j] = lep_gemm_clamp(first ? tile[i][j] + (bh_ ? bh_[j] : 0.0f) : ch[i * ldc + j] + tile[i][j],
                                                 clamp);
    }
}
#else
static inline void lep_ukr_strip(const int mr, int64_t kc, const float* restrict a, int nseg, const lep_a_seg* seg,
                                 const float* restrict b, int64_t bstride, int64_t np, float* restrict c,
                                 int64_t ldc, int64_t ncols, int first, const float* bias, const float* clamp,
                                 int64_t pf) {
    (void)nseg; (void)seg;  /* packed A only */
    for (int64_t q = 0; q < np; ++q, b += bstride, c += LEP_GEMM_NR, ncols -= LEP_GEMM_NR) {
        float acc[LEP_GEMM_MR][LEP_GEMM_NR] = {{0}};
        for (int64_t k = 0; k < kc; ++k)
            for (int i = 0; i < mr; ++i) {
                const float ai = a[k * mr + i];
                #pragma omp simd
                for (int j = 0; j < LEP_GEMM_NR; ++j) acc[i][j] += ai * b[k * LEP_GEMM_NR + j];
            }
        const int64_t w = ncols < LEP_GEMM_NR ? ncols : LEP_GEMM_NR;
        const float* bq = first && bias ? bias + q * LEP_GEMM_NR : NULL;
        for (int i = 0; i < mr; ++i)
            for (int64_t j = 0; j < w; ++j)
                c[i * ldc + j] = lep_gemm_clamp(first ? acc[i][j] + (bq ? bq[j] : 0.0f) : c[i * ldc + j] + acc[i][j],
                                                clamp);
    }
}
#endif

/* Where the rows of A come from: a row-major matrix (A, lda), or, when `pack` is not NULL, a function that
   packs A[m0:m1, k0:k0+kc] into lep_pack_a's layout itself (a convolution builds its im2col rows that way).
   When `view` is not NULL, it is asked first for each strip of rows [i0, i0 + mr) and K block [k0, k0 + kc):
   it returns how many segments (at most LEP_A_SEGS) show that part of A in place, and fills seg[] with them
   unless seg is NULL; 0 when it cannot (the strip is packed). Columns no segment covers are zero. */
typedef struct lep_a_rows lep_a_rows;
typedef void (*lep_pack_a_fn)(const void* ctx, int64_t m0, int64_t m1, int64_t k0, int64_t kc, float* Ap);
typedef int (*lep_view_a_fn)(const lep_a_rows* a, int64_t i0, int mr, int64_t k0, int64_t kc, lep_a_seg* seg);
struct lep_a_rows {
    const float* A;
    int64_t lda;
    lep_pack_a_fn pack;
    lep_view_a_fn view;
    const void* ctx;
};

/* The view of a row-major matrix: each strip is one segment. */
static int lep_view_matrix(const lep_a_rows* a, int64_t i0, int mr, int64_t k0, int64_t kc, lep_a_seg* seg) {
    if (seg) {
        seg->k = 0;
        seg->len = kc;
        for (int i = 0; i < mr; ++i) seg->row[i] = a->A + (i0 + i) * a->lda + k0;
    }
    return 1;
}

/* The driver (micro-kernel dispatch, blocking, threads) is compiled once per machine and linked beside a
   model's kernels (build.py: LEP_GEMM_DECLARE in the model's unit, LEP_GEMM_SEPARATE in the driver's); a
   source built alone, as an artifact's is when its library is rebuilt, holds it whole (both undefined). */
#ifndef LEP_GEMM_DECLARE
#ifdef LEP_GEMM_SEPARATE
#define LEP_GEMM_ENTRY __attribute__((visibility("hidden")))
#else
#define LEP_GEMM_ENTRY static
#endif

#if LEP_GEMM_MR > 12
#define LEP_UKR_CASES(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14)
#elif LEP_GEMM_MR > 8
#define LEP_UKR_CASES(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12)
#elif LEP_GEMM_MR > 6
#define LEP_UKR_CASES(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8)
#elif LEP_GEMM_MR > 4
#define LEP_UKR_CASES(X) X(1) X(2) X(3) X(4) X(5) X(6)
#else
#define LEP_UKR_CASES(X) X(1) X(2) X(3) X(4)
#endif

/* The micro-kernel for mr rows: on packed A (a), or on A read in place (nseg > 0 segments seg). */
static void lep_ukr_dispatch(int mr, int64_t kc, const float* a, int nseg, const lep_a_seg* seg, const float* b,
                             int64_t bstride, int64_t np, float* c, int64_t ldc, int64_t ncols, int first,
                             const float* bias, const float* clamp, int64_t pf) {
    switch (mr) {
#define LEP_UKR_CASE(R) case R: lep_ukr_strip(R, kc, a, nseg, seg, b, bstride, np, c, ldc, ncols, first, bias, clamp, pf); break;
    LEP_UKR_CASES(LEP_UKR_CASE)
#undef LEP_UKR_CASE
    default: break;
    }
}

/* ------------------------------------------------------------------ the blocked product on one thread */

/* Per-thread buffer for packed A, grown on demand and kept (the pool's threads live as long as the process). */
static __thread float* lep_gemm_abuf;
static __thread size_t lep_gemm_acap;

static float* lep_gemm_apack_buffer(size_t floats) {
    if (floats > lep_gemm_acap) {
        free(lep_gemm_abuf);
        lep_gemm_abuf = NULL;
        if (posix_memalign((void**)&lep_gemm_abuf, 64, floats * sizeof(float)) != 0) abort();
        lep_gemm_acap = floats;
    }
    return lep_gemm_abuf;
}

/* A[m0:m1, k0:k0+kc] into micro-panels of MR rows, k-major; the last panel has the rows left. */
static void lep_pack_a(const float* A, int64_t lda, int64_t m0, int64_t m1, int64_t k0, int64_t kc, float* Ap) {
    for (int64_t i0 = m0; i0 < m1; i0 += LEP_GEMM_MR) {
        const int64_t mr = m1 - i0 < LEP_GEMM_MR ? m1 - i0 : LEP_GEMM_MR;
        const float* src = A + i0 * lda + k0;
        if (mr == LEP_GEMM_MR) {
            for (int64_t k = 0; k < kc; ++k)
                #pragma GCC unroll 16
                for (int i = 0; i < LEP_GEMM_MR; ++i) Ap[k * LEP_GEMM_MR + i] = src[i * lda + k];
        } else {
            for (int64_t k = 0; k < kc; ++k)
                for (int64_t i = 0; i < mr; ++i) Ap[k * mr + i] = src[i * lda + k];
        }
        Ap += mr * kc;
    }
}

/* A strip shown in place (lep_a_seg) packed into lep_pack_a's layout; columns no segment gives are zero. */
static void lep_pack_segments(int mr, int64_t kc, int nseg, const lep_a_seg* seg, float* Ap) {
    memset(Ap, 0, (size_t)(mr * kc) * sizeof(float));
    for (int s = 0; s < nseg; ++s)
        for (int64_t k = 0; k < seg[s].len; ++k)
            for (int i = 0; i < mr; ++i) Ap[(seg[s].k + k) * mr + i] = seg[s].row[i][k];
}

static void lep_a_pack(const lep_a_rows* a, int64_t m0, int64_t m1, int64_t k0, int64_t kc, float* Ap) {
    if (a->pack) a->pack(a->ctx, m0, m1, k0, kc, Ap);
    else lep_pack_a(a->A, a->lda, m0, m1, k0, kc, Ap);
}

/* K's block for a product of M rows: a product of few rows (a GEMV and the like) takes K whole, so that B streams
   once. From M, never from a thread's share of it: the blocks of K set the order of each element's sum, which
   must not depend on how the rows are shared out. */
static inline int64_t lep_gemm_kc(int64_t M, int64_t K) {
    return M <= LEP_GEMM_MR && K * M <= LEP_GEMM_L1_FLOATS ? K : LEP_GEMM_KC;
}

/* C[m0:m1, panels p0:p1] (+ bias, clamped) on the calling thread, K in blocks of KC. */
static void lep_gemm_block(int64_t m0, int64_t m1, int64_t p0, int64_t p1, int64_t N, int64_t K, int64_t KC,
                           const lep_a_rows* a, const float* Bp, const float* bias, const float* clamp, float* C,
                           int64_t ldc, lep_epilogue ep, const void* ctx) {
    const int64_t rows = m1 - m0;
    if (rows <= 0 || p1 <= p0) return;
    /* a small B (a convolution's, mostly) stays in L2 whole: each strip runs across all the panels at once, so
       that its epilogue gets whole rows of the block while they are in L1 */
    const int64_t ncp = (p1 - p0) * LEP_GEMM_NR * (K < KC ? K : KC) <= LEP_GEMM_L2_FLOATS ? p1 - p0 : LEP_GEMM_NCP;
    if (K == 0) {
        const int64_t j0 = p0 * LEP_GEMM_NR, j1 = p1 * LEP_GEMM_NR < N ? p1 * LEP_GEMM_NR : N;
        for (int64_t i = m0; i < m1; ++i)
            for (int64_t j = j0; j < j1; ++j) C[i * ldc + j] = lep_gemm_clamp(bias ? bias[j] : 0.0f, clamp);
        if (ep) ep(ctx, C, ldc, m0, m1, j0, j1);
        return;
    }
    float* Ap = lep_gemm_apack_buffer((size_t)(rows * (K < KC ? K : KC)));
    lep_a_seg seg[LEP_A_SEGS];
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t kc = K - k0 < KC ? K - k0 : KC;
        const int first = k0 == 0, last = k0 + kc == K;
        if (!a->view) lep_a_pack(a, m0, m1, k0, kc, Ap);
        else  /* pack the strips that cannot be read in place (all of them where the micro-kernel reads packed A only) */
            for (int64_t i0 = m0; i0 < m1; i0 += LEP_GEMM_MR) {
                const int mr = (int)(m1 - i0 < LEP_GEMM_MR ? m1 - i0 : LEP_GEMM_MR);
#ifdef LEP_GEMM_READS_ROWS
                if (!a->view(a, i0, mr, k0, kc, NULL)) lep_a_pack(a, i0, i0 + mr, k0, kc, Ap + (i0 - m0) * kc);
#else
                const int nseg = a->view(a, i0, mr, k0, kc, seg);
                if (nseg) lep_pack_segments(mr, kc, nseg, seg, Ap + (i0 - m0) * kc);
                else lep_a_pack(a, i0, i0 + mr, k0, kc, Ap + (i0 - m0) * kc);
#endif
            }
        for (int64_t jc = p0; jc < p1; jc += ncp) {
            const int64_t np = p1 - jc < ncp ? p1 - jc : ncp;
            const int64_t j0 = jc * LEP_GEMM_NR, j1 = (jc + np) * LEP_GEMM_NR < N ? (jc + np) * LEP_GEMM_NR : N;
            const float* bq = Bp + (jc * K + k0) * LEP_GEMM_NR;
            const float* bias_q = first && bias ? bias + j0 : NULL;
            for (int64_t i0 = m0; i0 < m1; i0 += LEP_GEMM_MR) {
                const int mr = (int)(m1 - i0 < LEP_GEMM_MR ? m1 - i0 : LEP_GEMM_MR);
                const int64_t pf = i0 == m0 ? LEP_GEMM_PFD : 0;
#ifdef LEP_GEMM_READS_ROWS
                const int nseg = a->view ? a->view(a, i0, mr, k0, kc, seg) : 0;
#else
                const int nseg = 0;
#endif
                lep_ukr_dispatch(mr, kc, Ap + (i0 - m0) * kc, nseg, seg, bq, K * LEP_GEMM_NR, np, C + i0 * ldc + j0,
                                 ldc, j1 - j0, first, bias_q, last ? clamp : NULL, pf);
                if (last && ep) ep(ctx, C, ldc, i0, i0 + mr, j0, j1);
            }
        }
    }
}

/* ------------------------------------------------------------------ the split over threads */

/* Tiles along rows (tm) and along panels (tn), tm * tn = nt, minimizing the largest tile: its multiply-adds
   (rows rounded to MR, panels whole) plus a charge for the A and B bytes it reads. */
static void lep_gemm_grid(int64_t M, int64_t P, int64_t K, int nt, int* tm_out, int* tn_out) {
    const int64_t mb = (M + LEP_GEMM_MR - 1) / LEP_GEMM_MR;
    double best = -1.0;
    for (int tn = 1; tn <= nt; ++tn) {
        if (nt % tn) continue;
        const int tm = nt / tn;
        const double rows = (double)((mb + tm - 1) / tm * LEP_GEMM_MR), cols = (double)((P + tn - 1) / tn * LEP_GEMM_NR);
        const double cost = (rows * cols + 10.0 * (rows + cols)) * (double)K;
        if (best < 0 || cost < best) {
            best = cost;
            *tm_out = tm;
            *tn_out = tn;
        }
    }
}

#ifndef LEP_GEMM_TILES_PER_THREAD
#define LEP_GEMM_TILES_PER_THREAD 1 /* tiles per thread: one (more, smaller tiles cost 7-11% on an idle machine in
                                      BERT, ResNet-50 and ViT); a thread the OS runs late still leaves its tile to
                                      the first thread that finishes */
#endif
#define LEP_GEMM_TILE_MACS 262144.0 /* the fewest multiply-adds worth a tile of its own (~7 us) */

/* The product on the team: C cut into tiles (rows x panels) that the threads, the calling one too, take one at a
   time as they finish the last, so that a thread the OS runs late (other work holds the core) leaves its tiles
   to the others instead of making them wait. Each element is computed by one tile, in the same order whatever the
   tiles: the result does not depend on the number of threads. */
LEP_GEMM_ENTRY void lep_gemm_a(int64_t M, int64_t N, int64_t K, const lep_a_rows* a, const float* Bp,
                               const float* bias, const float* clamp, float* C, int64_t ldc, lep_epilogue ep,
                               const void* ctx) {
    if (M <= 0 || N <= 0) return;
    const int64_t P = (N + LEP_GEMM_NR - 1) / LEP_GEMM_NR, KC = lep_gemm_kc(M, K);
    const double macs = (double)M * (double)N * (double)K;
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (macs < 131072.0) nt = 1;
    if (nt == 1) {
        lep_gemm_block(0, M, 0, P, N, K, KC, a, Bp, bias, clamp, C, ldc, ep, ctx);
        return;
    }
    const double most = macs / LEP_GEMM_TILE_MACS;
    const int tiles = most < nt ? nt : most < nt * LEP_GEMM_TILES_PER_THREAD ? (int)most : nt * LEP_GEMM_TILES_PER_THREAD;
    int tm = 1, tn = tiles;
    lep_gemm_grid(M, P, K, tiles, &tm, &tn);
    const int64_t mb = (M + LEP_GEMM_MR - 1) / LEP_GEMM_MR;
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int t = 0; t < tm * tn; ++t) {  /* row-major: tiles taken one after the other share their rows of A */
        const int ti = t / tn, tj = t % tn;
        const int64_t r0 = mb * ti / tm * LEP_GEMM_MR, r1 = mb * (ti + 1) / tm * LEP_GEMM_MR;
        lep_gemm_block(r0, r1 < M ? r1 : M, P * tj / tn, P * (tj + 1) / tn, N, K, KC, a, Bp, bias, clamp, C, ldc,
                       ep, ctx);
    }
}

LEP_GEMM_ENTRY void lep_gemm_packed(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Bp,
                                    float* C, int64_t ldc, lep_epilogue ep, const void* ctx) {
    const lep_a_rows a = {A, lda, NULL, NULL, NULL};
    lep_gemm_a(M, N, K, &a, Bp, NULL, NULL, C, ldc, ep, ctx);
}
#else
void lep_gemm_a(int64_t M, int64_t N, int64_t K, const lep_a_rows* a, const float* Bp, const float* bias,
                const float* clamp, float* C, int64_t ldc, lep_epilogue ep, const void* ctx);
void lep_gemm_packed(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Bp, float* C,
                     int64_t ldc, lep_epilogue ep, const void* ctx);
#endif /* LEP_GEMM_DECLARE */
