/* leptonc cpu runtime helpers, included at the top of every generated model source. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>

/* Vector variants of libm functions (glibc's libmvec), so that loops calling them vectorize. */
#pragma omp declare simd notinbranch
extern float expf(float);
#pragma omp declare simd notinbranch
extern float logf(float);
#pragma omp declare simd notinbranch
extern float erff(float);
#pragma omp declare simd notinbranch
extern float tanhf(float);
#pragma omp declare simd notinbranch
extern float sinf(float);
#pragma omp declare simd notinbranch
extern float cosf(float);
#pragma omp declare simd notinbranch
extern float powf(float, float);

/* f16 and bf16, stored as their bits, to and from f32: round to nearest even, inf kept, NaN stays a quiet
   NaN with its sign and leading payload bits. Bit code rather than F16C's scalar _cvtss_sh/_cvtsh_ss: the
   compiler vectorizes it, with the loop around it (the scalar intrinsics kept a fused epilogue scalar,
   its tanhf included: an f16 MLP ran 3.3x its f32 time with them, 1.1-1.3x with this). */
static inline float lep_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, em = h & 0x7fffu, u;
    float f;
    if (em < 0x400u) {                          /* zero or subnormal: em * 2^-24, exact */
        f = (float)em * 0x1p-24f;
        memcpy(&u, &f, 4);
        u |= sign;
    } else if (em >= 0x7c00u) {                 /* inf or NaN */
        u = sign | 0x7f800000u | ((em & 0x3ffu) << 13);
    } else {
        u = sign | ((em << 13) + ((127u - 15u) << 23));
    }
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t lep_f32_to_f16(float f) {
    uint32_t x, a;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u | (uint16_t)((a >> 13) & 0x3ffu);   /* NaN, made quiet */
    if (a >= 0x47800000u) return sign | 0x7c00u;                                  /* >= 2^16, or inf */
    if (a < 0x38800000u) {                      /* below 2^-14: a subnormal f16; the FPU rounds the sum */
        float v, half = 0.5f;
        memcpy(&v, &a, 4);
        v += half;
        memcpy(&a, &v, 4);
        return sign | (uint16_t)(a - 0x3f000000u);
    }
    a += ((uint32_t)(15 - 127) << 23) + 0xfffu + ((a >> 13) & 1u);               /* rebias, round to even */
    return sign | (uint16_t)(a >> 13);
}

static inline float lep_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t lep_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);      /* NaN, made quiet */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* Per-thread scratch for kernels that keep a row between loops; 64-byte aligned. */
static inline void* lep_scratch(size_t bytes) {
    void* p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) abort();
    return p;
}

static inline int64_t lep_max1(int64_t x) { return x > 1 ? x : 1; }

/* Items of a parallel loop that a thread takes at a time (`schedule(dynamic, lep_grain(items, size))`, `size`
   elements an item), called before the parallel region: about LEP_CHUNKS_PER_THREAD chunks per thread of the
   team, so that a thread the OS runs late (other work holds the core) leaves its chunks to the others, and at
   least LEP_CHUNK_ELEMENTS elements a chunk, so that taking one costs nothing next to running it. Which thread
   runs an item never changes what it computes: the results are the same bits whatever the chunks. */
#define LEP_CHUNKS_PER_THREAD 8
#define LEP_CHUNK_ELEMENTS 4096
static inline int lep_grain(int64_t items, int64_t size) {
    const int64_t fewest = (LEP_CHUNK_ELEMENTS + lep_max1(size) - 1) / lep_max1(size);
    const int64_t even = items / ((int64_t)LEP_CHUNKS_PER_THREAD * omp_get_max_threads());
    const int64_t n = even > fewest ? even : fewest;
    return n < 1 ? 1 : n > INT32_MAX ? INT32_MAX : (int)n;
}

/* Python slice semantics: the first index and the count of x[start:end:step] over a dim of size d. */
static inline int64_t lep_slice(int64_t d, int64_t start, int64_t end, int64_t step, int64_t* first) {
    if (step > 0) {
        start = start < 0 ? (start + d < 0 ? 0 : start + d) : (start > d ? d : start);
        end = end < 0 ? (end + d < 0 ? 0 : end + d) : (end > d ? d : end);
        *first = start;
        return end > start ? (end - start + step - 1) / step : 0;
    }
    start = start < 0 ? (start + d < 0 ? -1 : start + d) : (start > d - 1 ? d - 1 : start);
    end = end < 0 ? (end + d < 0 ? -1 : end + d) : (end > d - 1 ? d - 1 : end);
    *first = start;
    return start > end ? (start - end - step - 1) / (-step) : 0;
}

/* dst[i...] = src[i...] over `shape`, both addressed by element strides (any layout, broadcasts too). */
static void lep_copy(char* dst, const int64_t* dstride, const char* src, const int64_t* sstride,
                     const int64_t* shape, int rank, size_t es) {
    if (rank == 0) { memcpy(dst, src, es); return; }
    int64_t outer = 1;
    for (int a = 0; a < rank - 1; ++a) outer *= shape[a];
    const int64_t n = shape[rank - 1], ds = dstride[rank - 1], ss = sstride[rank - 1];
    if (outer == 0 || n == 0) return;
    const int grain = lep_grain(outer, n);
    #pragma omp parallel for schedule(dynamic, grain) if (outer * n > 65536)
    for (int64_t o = 0; o < outer; ++o) {
        int64_t rem = o, doff = 0, soff = 0;
        for (int a = rank - 2; a >= 0; --a) {
            const int64_t i = rem % shape[a];
            rem /= shape[a];
            doff += i * dstride[a];
            soff += i * sstride[a];
        }
        char* d = dst + doff * (int64_t)es;
        const char* s = src + soff * (int64_t)es;
        if (ds == 1 && ss == 1) { memcpy(d, s, (size_t)n * es); continue; }
        switch (es) {
        case 4: for (int64_t j = 0; j < n; ++j) ((int32_t*)d)[j * ds] = ((const int32_t*)s)[j * ss]; break;
        case 8: for (int64_t j = 0; j < n; ++j) ((int64_t*)d)[j * ds] = ((const int64_t*)s)[j * ss]; break;
        case 2: for (int64_t j = 0; j < n; ++j) ((int16_t*)d)[j * ds] = ((const int16_t*)s)[j * ss]; break;
        default: for (int64_t j = 0; j < n; ++j) memcpy(d + j * ds * (int64_t)es, s + j * ss * (int64_t)es, es);
        }
    }
}

/* dst[b, s, r] = src[b, r, s] for b < B, r < R, s < S, elements of es bytes (1, 2, 4 or 8), a tile of
   16 x 16 at a time, so that both sides move whole cache lines. */
#define LEP_TILE 16
#define LEP_TRANSPOSE_TILE(T)                                                                         \
    {                                                                                                 \
        const T* s_ = (const T*)src + b * R * S;                                                      \
        T* d_ = (T*)dst + b * R * S;                                                                  \
        for (int64_t s = s0; s < s1; ++s)                                                             \
            for (int64_t r = r0; r < r1; ++r) d_[s * R + r] = s_[r * S + s];                          \
    }
static void lep_transpose_2d(char* dst, const char* src, int64_t B, int64_t R, int64_t S, size_t es) {
    const int64_t tr = (R + LEP_TILE - 1) / LEP_TILE, ts = (S + LEP_TILE - 1) / LEP_TILE;
    const int grain = lep_grain(B * tr * ts, LEP_TILE * LEP_TILE);
    #pragma omp parallel for schedule(dynamic, grain) if (B * R * S > 32768)
    for (int64_t t = 0; t < B * tr * ts; ++t) {
        const int64_t b = t / (tr * ts), r0 = t / ts % tr * LEP_TILE, s0 = t % ts * LEP_TILE;
        const int64_t r1 = r0 + LEP_TILE < R ? r0 + LEP_TILE : R, s1 = s0 + LEP_TILE < S ? s0 + LEP_TILE : S;
        switch (es) {
        case 1: LEP_TRANSPOSE_TILE(uint8_t) break;
        case 2: LEP_TRANSPOSE_TILE(uint16_t) break;
        case 4: LEP_TRANSPOSE_TILE(uint32_t) break;
        default: LEP_TRANSPOSE_TILE(uint64_t) break;
        }
    }
}

/* GEMM on the OpenMP thread pool: OpenBLAS runs single-threaded (the runtime sets it) and each thread
   takes a block of rows (or of columns, for short matrices). Inside a parallel region it runs as is.
   A single-row product is a GEMV (GEMM would copy the whole weight matrix into packed panels). */
#define LEP_GEMM(NAME, T, GEMM, GEMV)                                                                 \
    static void NAME(int ta, int tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,        \
                     const T* B, int64_t ldb, T* C, int64_t ldc) {                                    \
        if (M <= 0 || N <= 0) return;                                                                 \
        if (K <= 0) { for (int64_t i = 0; i < M; ++i) memset(C + i * ldc, 0, (size_t)N * sizeof(T)); return; } \
        int nt = omp_in_parallel() ? 1 : omp_get_max_threads();                                      \
        if ((double)M * (double)N * (double)K < 262144.0) nt = 1;                                     \
        _Pragma("omp parallel num_threads(nt)")                                                       \
        {                                                                                             \
            const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();                        \
            const int rows = M > 1 && (M >= 8 * n || M >= N);                                         \
            const int64_t len = rows ? M : N, lo = len * t / n, hi = len * (t + 1) / n;               \
            if (hi > lo && M == 1) {                                                                  \
                /* y[lo:hi] = x @ B[:, lo:hi]; x = A's row (stride lda when A is transposed) */       \
                if (tb) GEMV(CblasRowMajor, CblasNoTrans, (blasint)(hi - lo), (blasint)K, 1,           \
                             B + lo * ldb, (blasint)lep_max1(ldb), A, (blasint)(ta ? lda : 1), 0,      \
                             C + lo, 1);                                                              \
                else GEMV(CblasRowMajor, CblasTrans, (blasint)K, (blasint)(hi - lo), 1, B + lo,        \
                          (blasint)lep_max1(ldb), A, (blasint)(ta ? lda : 1), 0, C + lo, 1);          \
            } else if (hi > lo) {                                                                     \
                const T* a = rows ? (ta ? A + lo : A + lo * lda) : A;                                 \
                const T* b = rows ? B : (tb ? B + lo * ldb : B + lo);                                 \
                T* c = rows ? C + lo * ldc : C + lo;                                                  \
                GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,   \
                     (blasint)(rows ? hi - lo : M), (blasint)(rows ? N : hi - lo), (blasint)K, 1, a,   \
                     (blasint)lep_max1(lda), b, (blasint)lep_max1(ldb), 0, c, (blasint)lep_max1(ldc)); \
            }                                                                                         \
        }                                                                                             \
    }
LEP_GEMM(lep_sgemm, float, scipy_cblas_sgemm, scipy_cblas_sgemv)
LEP_GEMM(lep_dgemm, double, scipy_cblas_dgemm, scipy_cblas_dgemv)

/* a ** b for integers (b < 0 gives 0, or 1 for a base of 1); the other integer and float ops are composed
   inline by the kernel-body layer (codegen/kernel_body.py). */
#define LEP_INT_POW(T)                                                                  \
    static inline T lep_ipow_##T(T a, T b) {                                            \
        T r = 1;                                                                        \
        if (b < 0) return a == 1 ? 1 : 0;                                               \
        while (b) { if (b & 1) r = (T)(r * a); a = (T)(a * a); b = (T)(b >> 1); }        \
        return r;                                                                       \
    }
LEP_INT_POW(int64_t)
LEP_INT_POW(int32_t)
LEP_INT_POW(int16_t)
LEP_INT_POW(int8_t)
LEP_INT_POW(uint8_t)
LEP_INT_POW(uint16_t)
LEP_INT_POW(uint32_t)
LEP_INT_POW(uint64_t)

/* The first index out of range a kernel met (program.py): its position in the index tensor (INT64_MAX while
   none), its value, the data dim it indexes and that dim's size. Threads keep the lowest position, so that
   every run reports the same index as the reference interpreter. */
typedef struct { int64_t pos, index, dim, size; } lep_index_error;
static inline void lep_index_fault(lep_index_error* e, int64_t pos, int64_t index, int64_t dim, int64_t size) {
    #pragma omp critical(lep_index_fault)
    if (pos < e->pos) { e->pos = pos; e->index = index; e->dim = dim; e->size = size; }
}

#define LEP_TIMED(i, call)                                        \
    do {                                                          \
        if (prof) {                                               \
            const double t0_ = omp_get_wtime();                   \
            call;                                                 \
            prof[i] += omp_get_wtime() - t0_;                     \
        } else {                                                  \
            call;                                                 \
        }                                                         \
    } while (0)
