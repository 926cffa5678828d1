/* leptonc packed GEMM: C[M, N] = A[M, K] @ B[K, N] in fp32, with B packed ahead of time (at compile time
 * for weights) and an optional epilogue applied to each block of C as soon as it holds its final values,
 * while the block is still in cache. Included in a model's source when a kernel uses it.
 *
 *   typedef void (*lep_epilogue)(const void* ctx, float* C, int64_t ldc,
 *                                int64_t i0, int64_t i1, int64_t j0, int64_t j1);
 *   void lep_gemm_packed(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
 *                        const float* Bp, float* C, int64_t ldc, lep_epilogue ep, const void* ctx);
 *   void lep_pack_b(int64_t K, int64_t N, const float* B, int64_t ldb, float* Bp);
 *   void lep_gemm_packed_a(M, N, K, lep_pack_a_fn pack, const void* actx, Bp, C, ldc, ep, ctx);
 *     the same product with A's rows packed by `pack` instead of read from a matrix (see lep_a_rows)
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
 *   - Threads: the OpenMP pool, split so that each thread gets an even share of rows x columns; inside a
 *     parallel region (or for small products) it runs on the calling thread alone.
 *   - K = 0 gives C = 0 (then the epilogue). M = 0 or N = 0 does nothing.
 *
 * Packed layout (the same on every ISA, so packed weights in an artifact stay valid where its library is
 * rebuilt): panels of LEP_GEMM_NR = 32 columns; panel p holds columns [32p, 32p + 32) as K rows of 32
 * floats, element (k, 32p + c) at Bp[(p * K + k) * 32 + c]; columns past N are zero. ceil(N / 32) panels,
 * lep_packed_size(K, N) floats in all.
 *
 * Inside (BLIS-style): each thread owns a rectangle of C (rows x whole panels). For each block of KC of
 * the K dim it packs its rows of A into micro-panels of MR rows (k-major), then, for each group of NCP
 * panels (a KC x NCP*32 block of B that stays in L2), runs the register-blocked micro-kernel (MR rows x 32
 * columns, accumulators in registers, the A micro-panel in L1) across the group, and hands the finished
 * MR-row strip of the group to the epilogue. Few rows (a GEMV and the like) take K in one block, so each
 * thread streams its panels of B from memory once, front to back.
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

/* ------------------------------------------------------------------ micro-kernels
 * lep_ukr_strip(mr, kc, a, b, bstride, np, c, ldc, ncols, first): for each of np panels (b advancing by
 * bstride floats), C[0:mr, 32q : 32q + 32] (= or +=, by `first`) a[kc x mr, k-major] @ b_q[kc x 32], only
 * the first `ncols` columns of the strip stored. mr is a constant in every instance (the switch below), so
 * the accumulators live in registers. */
#if defined(__AVX512F__)
#ifndef LEP_GEMM_MR
#define LEP_GEMM_MR 8
#endif

static inline __mmask16 lep_gemm_mask(int64_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

static inline __attribute__((always_inline)) void lep_ukr_strip(const int mr, int64_t kc, const float* restrict a,
                                                                const float* restrict b, int64_t bstride,
                                                                int64_t np, float* restrict c, int64_t ldc,
                                                                int64_t ncols, int first, int64_t pf) {
    for (int64_t q = 0; q < np; ++q, b += bstride, c += LEP_GEMM_NR, ncols -= LEP_GEMM_NR) {
        __m512 c0[LEP_GEMM_MR], c1[LEP_GEMM_MR];
        #pragma GCC unroll 16
        for (int i = 0; i < mr; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
        const float* ak = a;
        const float* bk = b;
        #pragma GCC unroll 4
        for (int64_t k = 0; k < kc; ++k, ak += mr, bk += LEP_GEMM_NR) {
            if (pf) { _mm_prefetch((const char*)(bk + pf), _MM_HINT_T0); _mm_prefetch((const char*)(bk + pf + 16), _MM_HINT_T0); }
            const __m512 b0 = _mm512_loadu_ps(bk), b1 = _mm512_loadu_ps(bk + 16);
            #pragma GCC unroll 16
            for (int i = 0; i < mr; ++i) {
                const __m512 ai = _mm512_set1_ps(ak[i]);
                c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
                c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
            }
        }
        if (ncols >= LEP_GEMM_NR) {
            #pragma GCC unroll 16
            for (int i = 0; i < mr; ++i) {
                float* ci = c + i * ldc;
                if (!first) {
                    c0[i] = _mm512_add_ps(c0[i], _mm512_loadu_ps(ci));
                    c1[i] = _mm512_add_ps(c1[i], _mm512_loadu_ps(ci + 16));
                }
                _mm512_storeu_ps(ci, c0[i]);
                _mm512_storeu_ps(ci + 16, c1[i]);
            }
        } else {
            const __mmask16 m0 = lep_gemm_mask(ncols), m1 = lep_gemm_mask(ncols - 16);
            #pragma GCC unroll 16
            for (int i = 0; i < mr; ++i) {
                float* ci = c + i * ldc;
                if (!first) {
                    c0[i] = _mm512_add_ps(c0[i], _mm512_maskz_loadu_ps(m0, ci));
                    c1[i] = _mm512_add_ps(c1[i], _mm512_maskz_loadu_ps(m1, ci + 16));
                }
                _mm512_mask_storeu_ps(ci, m0, c0[i]);
                _mm512_mask_storeu_ps(ci + 16, m1, c1[i]);
            }
        }
    }
}
#elif defined(__AVX2__) && defined(__FMA__)
#define LEP_GEMM_MR 6

/* 6 rows x 16 columns (half a panel) per pass: 12 accumulators, 2 for B, 1 broadcast of the 16 ymm */
static inline __attribute__((always_inline)) void lep_ukr_strip(const int mr, int64_t kc, const float* restrict a,
                                                                const float* restrict b, int64_t bstride,
                                                                int64_t np, float* restrict c, int64_t ldc,
                                                                int64_t ncols, int first, int64_t pf) {
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
        for (int i = 0; i < mr; ++i)
            for (int64_t j = 0; j < w; ++j) ch[i * ldc + j] = first ? tile[i][j] : ch[i * ldc + j] + tile[i][j];
    }
}
#else
#define LEP_GEMM_MR 4

static inline void lep_ukr_strip(const int mr, int64_t kc, const float* restrict a, const float* restrict b,
                                 int64_t bstride, int64_t np, float* restrict c, int64_t ldc, int64_t ncols,
                                 int first, int64_t pf) {
    for (int64_t q = 0; q < np; ++q, b += bstride, c += LEP_GEMM_NR, ncols -= LEP_GEMM_NR) {
        float acc[LEP_GEMM_MR][LEP_GEMM_NR] = {{0}};
        for (int64_t k = 0; k < kc; ++k)
            for (int i = 0; i < mr; ++i) {
                const float ai = a[k * mr + i];
                #pragma omp simd
                for (int j = 0; j < LEP_GEMM_NR; ++j) acc[i][j] += ai * b[k * LEP_GEMM_NR + j];
            }
        const int64_t w = ncols < LEP_GEMM_NR ? ncols : LEP_GEMM_NR;
        for (int i = 0; i < mr; ++i)
            for (int64_t j = 0; j < w; ++j) c[i * ldc + j] = first ? acc[i][j] : c[i * ldc + j] + acc[i][j];
    }
}
#endif

/* The driver (micro-kernel dispatch, blocking, threads) is compiled once per machine and linked beside a
   model's kernels (build.py: LEP_GEMM_DECLARE in the model's unit, LEP_GEMM_SEPARATE in the driver's); a
   source built alone, as an artifact's is when its library is rebuilt, holds it whole (both undefined). */
#ifndef LEP_GEMM_DECLARE
#ifdef LEP_GEMM_SEPARATE
#define LEP_GEMM_ENTRY __attribute__((visibility("hidden")))
#else
#define LEP_GEMM_ENTRY static
#endif

static void lep_ukr_dispatch(int mr, int64_t kc, const float* a, const float* b, int64_t bstride, int64_t np,
                             float* c, int64_t ldc, int64_t ncols, int first, int64_t pf) {
    switch (mr) {
#define LEP_UKR_CASE(R) case R: lep_ukr_strip(R, kc, a, b, bstride, np, c, ldc, ncols, first, pf); break;
    LEP_UKR_CASE(1) LEP_UKR_CASE(2) LEP_UKR_CASE(3) LEP_UKR_CASE(4)
#if LEP_GEMM_MR > 4
    LEP_UKR_CASE(5) LEP_UKR_CASE(6)
#endif
#if LEP_GEMM_MR > 6
    LEP_UKR_CASE(7) LEP_UKR_CASE(8)
#endif
#if LEP_GEMM_MR > 8
    LEP_UKR_CASE(9) LEP_UKR_CASE(10) LEP_UKR_CASE(11) LEP_UKR_CASE(12)
#endif
#if LEP_GEMM_MR > 12
    LEP_UKR_CASE(13) LEP_UKR_CASE(14)
#endif
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
#endif /* LEP_GEMM_DECLARE */

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

/* Where the rows of A come from: a row-major matrix (A, lda), or, when `pack` is not NULL, a function that
   packs A[m0:m1, k0:k0+kc] into lep_pack_a's layout itself (a convolution builds its im2col rows that way). */
typedef void (*lep_pack_a_fn)(const void* ctx, int64_t m0, int64_t m1, int64_t k0, int64_t kc, float* Ap);
typedef struct {
    const float* A;
    int64_t lda;
    lep_pack_a_fn pack;
    const void* ctx;
} lep_a_rows;

#ifndef LEP_GEMM_DECLARE
/* C[m0:m1, panels p0:p1] on the calling thread. */
static void lep_gemm_block(int64_t m0, int64_t m1, int64_t p0, int64_t p1, int64_t N, int64_t K, const lep_a_rows* a,
                           const float* Bp, float* C, int64_t ldc, lep_epilogue ep, const void* ctx) {
    const int64_t rows = m1 - m0;
    if (rows <= 0 || p1 <= p0) return;
    const int64_t ncp = LEP_GEMM_NCP;
    int64_t KC = LEP_GEMM_KC;
    if (rows <= LEP_GEMM_MR && K * rows <= LEP_GEMM_L1_FLOATS) KC = K;  /* few rows: B streams once, whole */
    if (K == 0) {
        for (int64_t i = m0; i < m1; ++i) memset(C + i * ldc + p0 * LEP_GEMM_NR, 0,
                                                 (size_t)((p1 * LEP_GEMM_NR < N ? p1 * LEP_GEMM_NR : N)
                                                          - p0 * LEP_GEMM_NR) * sizeof(float));
        if (ep) ep(ctx, C, ldc, m0, m1, p0 * LEP_GEMM_NR, p1 * LEP_GEMM_NR < N ? p1 * LEP_GEMM_NR : N);
        return;
    }
    float* Ap = lep_gemm_apack_buffer((size_t)(rows * (K < KC ? K : KC)));
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t kc = K - k0 < KC ? K - k0 : KC;
        const int first = k0 == 0, last = k0 + kc == K;
        if (a->pack) a->pack(a->ctx, m0, m1, k0, kc, Ap);
        else lep_pack_a(a->A, a->lda, m0, m1, k0, kc, Ap);
        for (int64_t jc = p0; jc < p1; jc += ncp) {
            const int64_t np = p1 - jc < ncp ? p1 - jc : ncp;
            const int64_t j0 = jc * LEP_GEMM_NR, j1 = (jc + np) * LEP_GEMM_NR < N ? (jc + np) * LEP_GEMM_NR : N;
            const float* ap = Ap;
            for (int64_t i0 = m0; i0 < m1; i0 += LEP_GEMM_MR) {
                const int mr = (int)(m1 - i0 < LEP_GEMM_MR ? m1 - i0 : LEP_GEMM_MR);
                lep_ukr_dispatch(mr, kc, ap, Bp + (jc * K + k0) * LEP_GEMM_NR, K * LEP_GEMM_NR, np,
                                 C + i0 * ldc + j0, ldc, j1 - j0, first, i0 == m0 ? LEP_GEMM_PFD : 0);
                if (last && ep) ep(ctx, C, ldc, i0, i0 + mr, j0, j1);
                ap += mr * kc;
            }
        }
    }
}

/* ------------------------------------------------------------------ the split over threads */

/* Threads along rows (tm) and along panels (tn), tm * tn = nt, minimizing the largest share: its
   multiply-adds (rows rounded to MR, panels whole) plus a charge for the A and B bytes it reads. */
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

static void lep_gemm_rows(int64_t M, int64_t N, int64_t K, const lep_a_rows* a, const float* Bp, float* C,
                          int64_t ldc, lep_epilogue ep, const void* ctx) {
    if (M <= 0 || N <= 0) return;
    const int64_t P = (N + LEP_GEMM_NR - 1) / LEP_GEMM_NR;
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if ((double)M * (double)N * (double)K < 131072.0) nt = 1;
    if (nt == 1) {
        lep_gemm_block(0, M, 0, P, N, K, a, Bp, C, ldc, ep, ctx);
        return;
    }
    int tm = 1, tn = nt;
    lep_gemm_grid(M, P, K, nt, &tm, &tn);
    const int64_t mb = (M + LEP_GEMM_MR - 1) / LEP_GEMM_MR;
    #pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        if (n == nt) {
            const int ti = t / tn, tj = t % tn;
            const int64_t r0 = mb * ti / tm * LEP_GEMM_MR, r1 = mb * (ti + 1) / tm * LEP_GEMM_MR;
            lep_gemm_block(r0, r1 < M ? r1 : M, P * tj / tn, P * (tj + 1) / tn, N, K, a, Bp, C, ldc, ep, ctx);
        } else if (t == 0) {  /* the runtime gave fewer threads than asked: one does it all */
            lep_gemm_block(0, M, 0, P, N, K, a, Bp, C, ldc, ep, ctx);
        }
    }
}

LEP_GEMM_ENTRY void lep_gemm_packed(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Bp, float* C,
                            int64_t ldc, lep_epilogue ep, const void* ctx) {
    const lep_a_rows a = {A, lda, NULL, NULL};
    lep_gemm_rows(M, N, K, &a, Bp, C, ldc, ep, ctx);
}

/* lep_gemm_packed with the rows of A packed by `pack` (see lep_a_rows). */
LEP_GEMM_ENTRY void lep_gemm_packed_a(int64_t M, int64_t N, int64_t K, lep_pack_a_fn pack, const void* actx, const float* Bp,
                              float* C, int64_t ldc, lep_epilogue ep, const void* ctx) {
    const lep_a_rows a = {NULL, 0, pack, actx};
    lep_gemm_rows(M, N, K, &a, Bp, C, ldc, ep, ctx);
}
#else
void lep_gemm_packed(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Bp, float* C,
                     int64_t ldc, lep_epilogue ep, const void* ctx);
void lep_gemm_packed_a(int64_t M, int64_t N, int64_t K, lep_pack_a_fn pack, const void* actx, const float* Bp,
                       float* C, int64_t ldc, lep_epilogue ep, const void* ctx);
#endif /* LEP_GEMM_DECLARE */
