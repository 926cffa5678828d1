/* Image kernels: resize, grid_sample and roi_align, computed in double as the reference interpreter does
   (leptonc/ir/ops/image.py), with its operations in its order. Contraction of a * b + c into one fused
   multiply-add is off here: it would round differently from numpy and move a sample across a pixel edge. */
#pragma GCC push_options
#pragma GCC optimize ("fp-contract=off")

enum { LEP_NEAREST, LEP_LINEAR, LEP_CUBIC };
enum { LEP_HALF_PIXEL, LEP_HALF_PIXEL_SYMMETRIC, LEP_PYTORCH_HALF_PIXEL, LEP_ALIGN_CORNERS, LEP_ASYMMETRIC,
       LEP_TF_CROP_AND_RESIZE };
enum { LEP_ROUND_PREFER_FLOOR, LEP_ROUND_PREFER_CEIL, LEP_FLOOR, LEP_CEIL };

typedef struct {
    int mode, coords, nearest, exclude_outside, antialias;
    double cubic_a, extrapolation;
} lep_resize_modes;

/* floor(v) as an index; NaN and values past the int64 range give INT64_MIN (numpy's astype on x86). */
static inline int64_t lep_floor_index(double v) {
    double f = floor(v);
    return (f == f && f >= -9.2233720368547758e18 && f < 9.2233720368547758e18) ? (int64_t)f : INT64_MIN;
}

/* v rounded half to even and clipped to [lo, hi] (NaN stays NaN), as the reference rounds a result to integers. */
static inline double lep_clip_round(double v, double lo, double hi) {
    v = nearbyint(v);
    return v < lo ? lo : v > hi ? hi : v;
}

/* Python's math.isclose(a, b) with its default relative tolerance. */
static inline int lep_isclose(double a, double b) {
    double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return a == b || fabs(a - b) <= 1e-9 * m;
}

/* The taps per output position along one axis (resize's _resize_axis): n indices into the input (clipped),
   their weights, and whether the position lies outside the crop (tf_crop_and_resize). Returns n. */
static int lep_resize_taps(const lep_resize_modes* m, int64_t in_n, int64_t out_n, double scale, double lo,
                           double hi, int64_t** idx_out, double** w_out, unsigned char** outside_out) {
    const double s = scale < 1.0 ? scale : 1.0;
    int64_t first = 0;
    int n;
    if (m->mode == LEP_NEAREST) n = 2;
    else if (!m->antialias) n = m->mode == LEP_LINEAR ? 2 : 4;
    else { first = (int64_t)floor((m->mode == LEP_LINEAR ? -1.0 : -2.0) / s) + 1; n = (int)(2 - 2 * first); }
    int64_t* idx = (int64_t*)lep_scratch((size_t)(out_n * n) * sizeof(int64_t));
    double* w = (double*)lep_scratch((size_t)(out_n * n) * sizeof(double));
    unsigned char* outside = (unsigned char*)lep_scratch((size_t)out_n);
    const double out_w = scale * (double)in_n, a = m->cubic_a;
    const int pad = (n + 1) / 2;
    for (int64_t j = 0; j < out_n; ++j) {
        const double y = (double)j;
        double x;
        outside[j] = 0;
        switch (m->coords) {
        case LEP_ALIGN_CORNERS: x = out_w == 1 ? 0.0 : y * (double)(in_n - 1) / (out_w - 1); break;
        case LEP_ASYMMETRIC: x = y / scale; break;
        case LEP_TF_CROP_AND_RESIZE:
            x = out_w == 1 ? (hi - lo) * (double)(in_n - 1) / 2 : y * (hi - lo) * (double)(in_n - 1) / (out_w - 1);
            x = x + lo * (double)(in_n - 1);
            outside[j] = x < 0 || x > (double)(in_n - 1);
            break;
        case LEP_PYTORCH_HALF_PIXEL: x = out_w == 1 ? -0.5 : (y + 0.5) / scale - 0.5; break;
        case LEP_HALF_PIXEL: x = (y + 0.5) / scale - 0.5; break;
        default: x = (double)in_n / 2 * (1 - (double)out_n / out_w) + (y + 0.5) / scale - 0.5; break;
        }
        const double xf = floor(x), r = x == xf ? 1.0 : x - xf;
        double* c = w + j * n;
        if (m->mode == LEP_NEAREST) {
            int left = m->nearest == LEP_ROUND_PREFER_FLOOR ? r <= 0.5 : m->nearest == LEP_ROUND_PREFER_CEIL ? r < 0.5
                       : m->nearest == LEP_FLOOR;
            left = left && r != 1.0;
            c[0] = left; c[1] = !left;
        } else if (m->mode == LEP_LINEAR && !m->antialias) {
            c[0] = 1 - r; c[1] = r;
        } else if (m->mode == LEP_CUBIC && !m->antialias) {
            const double rr = r + 1, q = 1 - r;
            c[0] = ((a * rr - 5 * a) * rr + 8 * a) * rr - 4 * a;
            c[1] = ((a + 2) * r - (a + 3)) * r * r + 1;
            c[2] = ((a + 2) * q - (a + 3)) * q * q + 1;
            c[3] = ((a * (q + 1) - 5 * a) * (q + 1) + 8 * a) * (q + 1) - 4 * a;
        } else {  /* antialias: the filter stretched by 1 / scale, normalized */
            double total = 0.0;
            for (int k = 0; k < n; ++k) {
                const double t = ((double)(first + k) - r) * s;
                double v;
                if (m->mode == LEP_LINEAR) {
                    v = 1 - fabs(t);
                    v = v < 0 ? 0 : v > 1 ? 1 : v;
                } else {
                    const double u = fabs(t);
                    v = u <= 1 ? (a + 2) * pow(u, 3.0) - (a + 3) * (u * u) + 1
                        : u < 2 ? a * pow(u, 3.0) - 5 * a * (u * u) + 8 * a * u - 4 * a : 0.0;
                }
                c[k] = v;
                total = k ? total + v : v;
            }
            for (int k = 0; k < n; ++k) c[k] = c[k] / total;
        }
        const double xp = x + pad, p = floor(xp);
        const int64_t start = lep_floor_index(xp) + (xp - p == 0 ? -(n / 2) : -(n / 2) + 1);
        double total = 0.0;
        for (int k = 0; k < n; ++k) {
            const int64_t i = start + k - pad;
            if (m->exclude_outside && (i < 0 || i >= in_n)) c[k] = 0.0;
            total = k ? total + c[k] : c[k];
            idx[j * n + k] = i < 0 ? 0 : i >= in_n ? in_n - 1 : i;
        }
        if (m->exclude_outside)
            for (int k = 0; k < n; ++k) c[k] = c[k] / (total == 0 ? 1.0 : total);
    }
    *idx_out = idx; *w_out = w; *outside_out = outside;
    return n;
}

/* The last axis (inner size 1): one output element per tap set, a row at a time, stored as T. */
#define LEP_RESIZE_LAST_AXIS(name, T)                                                                          \
static void name(const double* src, T* dst, int64_t outer, int64_t in_n, int64_t out_n, int n, const int64_t* idx, \
                 const double* w, const unsigned char* outside, double extrapolation) {                       \
    _Pragma("omp parallel for schedule(static) if (outer * out_n * n > 65536)")                             \
    for (int64_t o = 0; o < outer; ++o) {                                                                    \
        const double* s = src + o * in_n;                                                                    \
        T* d = dst + o * out_n;                                                                              \
        if (n == 2) {  /* nearest and linear: the taps unrolled */                                          \
            for (int64_t j = 0; j < out_n; ++j)                                                              \
                d[j] = (T)(outside[j] ? extrapolation : s[idx[2 * j]] * w[2 * j] + s[idx[2 * j + 1]] * w[2 * j + 1]); \
            continue;                                                                                        \
        }                                                                                                    \
        for (int64_t j = 0; j < out_n; ++j) {                                                                \
            const int64_t* ij = idx + j * n;                                                                 \
            const double* wj = w + j * n;                                                                    \
            double acc = s[ij[0]] * wj[0];                                                                   \
            for (int k = 1; k < n; ++k) acc = acc + s[ij[k]] * wj[k];                                        \
            d[j] = (T)(outside[j] ? extrapolation : acc);                                                    \
        }                                                                                                    \
    }                                                                                                        \
}
LEP_RESIZE_LAST_AXIS(lep_resize_last_axis, double)
LEP_RESIZE_LAST_AXIS(lep_resize_last_axis_f32, float)  /* the double rounded once to float, as astype does */

/* dst[o, j, i] = sum over the taps k of src[o, idx[j, k], i] * w[j, k] (the extrapolation value outside). */
static void lep_resize_axis(const double* src, double* dst, int64_t outer, int64_t in_n, int64_t out_n,
                            int64_t inner, int n, const int64_t* idx, const double* w, const unsigned char* outside,
                            double extrapolation) {
    if (inner == 1) {
        lep_resize_last_axis(src, dst, outer, in_n, out_n, n, idx, w, outside, extrapolation);
        return;
    }
    #pragma omp parallel for schedule(static) if (outer * out_n * inner * n > 65536)
    for (int64_t oj = 0; oj < outer * out_n; ++oj) {
        const int64_t o = oj / out_n, j = oj % out_n;
        double* d = dst + oj * inner;
        if (outside[j]) {
            for (int64_t i = 0; i < inner; ++i) d[i] = extrapolation;
            continue;
        }
        const double* s0 = src + (o * in_n + idx[j * n]) * inner;
        const double w0 = w[j * n];
        for (int64_t i = 0; i < inner; ++i) d[i] = s0[i] * w0;
        for (int k = 1; k < n; ++k) {
            const double* sk = src + (o * in_n + idx[j * n + k]) * inner;
            const double wk = w[j * n + k];
            for (int64_t i = 0; i < inner; ++i) d[i] = d[i] + sk[i] * wk;
        }
    }
}

/* Whether resize skips axis a (the reference's rule: scale 1, size kept, no crop), and its scale. */
static int lep_resize_keeps_axis(int a, int64_t in_n, int64_t out_n, int rank, const double* scales, const double* roi,
                                 double* scale) {
    *scale = scales[a] != 0 ? scales[a] : (double)out_n / (double)in_n;
    return lep_isclose(*scale, 1.0) && out_n == in_n && (!roi || (roi[a] == 0.0 && lep_isclose(roi[a + rank], 1.0)));
}

/* For nearest mode without exclude_outside or a crop: per axis, the input position each output position
   reads (tables[a], out_shape[a] entries, for the caller to free). Over finite data this is what the reference
   computes (its weights are 1 on that position and 0 on the other). */
static void lep_resize_nearest_tables(const int64_t* in_shape, const int64_t* out_shape, int rank,
                                      const double* scales, const double* roi, const lep_resize_modes* m,
                                      int64_t** tables) {
    for (int a = 0; a < rank; ++a) {
        int64_t* t = (int64_t*)lep_scratch((size_t)out_shape[a] * sizeof(int64_t));
        double s;
        if (lep_resize_keeps_axis(a, in_shape[a], out_shape[a], rank, scales, roi, &s) || out_shape[a] == 0) {
            for (int64_t j = 0; j < out_shape[a]; ++j) t[j] = j;
        } else {
            int64_t* idx; double* w; unsigned char* outside;
            lep_resize_taps(m, in_shape[a], out_shape[a], s, 0.0, 1.0, &idx, &w, &outside);
            for (int64_t j = 0; j < out_shape[a]; ++j) t[j] = w[2 * j] == 1.0 ? idx[2 * j] : idx[2 * j + 1];
            free(idx); free(w); free(outside);
        }
        tables[a] = t;
    }
}

/* Resize `data` (shape in_shape, owned by the caller) to out_shape one axis at a time, skipping the axes the
   reference skips; scales[a] == 0 means out / in; roi (2 * rank values: starts, then ends) may be NULL.
   Returns the result: `data` itself when no axis changes, else a buffer the caller frees; or NULL when
   `out_f32` is given and the last axis resized is the innermost one, whose pass then writes the result there
   as f32. */
static double* lep_resize(double* data, const int64_t* in_shape, const int64_t* out_shape, int rank,
                          const double* scales, const double* roi, const lep_resize_modes* m, float* out_f32) {
    int64_t shape[16];
    double* cur = data;
    double s;
    int last = -1;
    for (int a = 0; a < rank; ++a)
        if (!lep_resize_keeps_axis(a, in_shape[a], out_shape[a], rank, scales, roi, &s)) last = a;
    for (int a = 0; a < rank; ++a) shape[a] = in_shape[a];
    for (int a = 0; a <= last; ++a) {
        const double lo = roi ? roi[a] : 0.0, hi = roi ? roi[a + rank] : 1.0;
        if (lep_resize_keeps_axis(a, shape[a], out_shape[a], rank, scales, roi, &s)) continue;
        int64_t outer = 1, inner = 1;
        for (int b = 0; b < a; ++b) outer *= shape[b];
        for (int b = a + 1; b < rank; ++b) inner *= shape[b];
        const int direct = out_f32 && a == last && inner == 1;
        double* next = direct ? NULL : (double*)lep_scratch((size_t)(outer * out_shape[a] * inner) * sizeof(double));
        if (out_shape[a] > 0) {
            int64_t* idx; double* w; unsigned char* outside;
            const int n = lep_resize_taps(m, shape[a], out_shape[a], s, lo, hi, &idx, &w, &outside);
            if (direct)
                lep_resize_last_axis_f32(cur, out_f32, outer, shape[a], out_shape[a], n, idx, w, outside,
                                         m->extrapolation);
            else
                lep_resize_axis(cur, next, outer, shape[a], out_shape[a], inner, n, idx, w, outside, m->extrapolation);
            free(idx); free(w); free(outside);
        }
        if (cur != data) free(cur);
        cur = next;
        shape[a] = out_shape[a];
    }
    return cur;
}

/* rint(v) (half to even) as an index; NaN and values past the int64 range give INT64_MIN. */
static inline int64_t lep_rint_index(double v) {
    double f = nearbyint(v);
    return (f == f && f >= -9.2233720368547758e18 && f < 9.2233720368547758e18) ? (int64_t)f : INT64_MIN;
}

/* The larger of a and b, NaN if either is (numpy's max). */
static inline double lep_nanmax(double a, double b) { return a != a ? a : (b != b || b > a) ? b : a; }

static inline double lep_clamp(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* c folded into [lo, hi] by reflection at both ends (grid_sample's _reflect). */
static double lep_reflect(double c, double lo, double hi) {
    const double span = hi - lo;
    if (span <= 0) return lo;
    c = fabs(c - lo);
    const double flips = floor(c / span), rest = c - flips * span;
    return fmod(flips, 2.0) == 0 ? lo + rest : hi - rest;
}

enum { LEP_GS_LINEAR, LEP_GS_NEAREST, LEP_GS_CUBIC };
enum { LEP_GS_ZEROS, LEP_GS_BORDER, LEP_GS_REFLECTION };

/* grid_sample's taps at one grid point g (nsp coordinates, the innermost dim's first) over a block of
   spatial dims in_sp (outermost first): for each, its position in the block, weight and whether it lies
   inside. Returns the count (1 for nearest, 2^nsp for linear, 4^nsp for cubic). */
static int lep_grid_taps(const double* g, int nsp, const int64_t* in_sp, int mode, int padding, int align,
                         int64_t* off, double* w, unsigned char* ok) {
    const double A = -0.75;
    int64_t size[3], base[3];
    double c[3], frac[3], cw[3][4];
    for (int i = 0; i < nsp; ++i) {
        size[i] = in_sp[nsp - 1 - i];
        const double gi = g[i], sz = (double)size[i];
        double ci = align ? (gi + 1) / 2 * (sz - 1) : ((gi + 1) * sz - 1) / 2;
        if (padding == LEP_GS_BORDER) ci = lep_clamp(ci, 0, sz - 1);
        else if (padding == LEP_GS_REFLECTION)
            ci = align ? lep_reflect(ci, 0, sz - 1) : lep_clamp(lep_reflect(ci, -0.5, sz - 0.5), 0, sz - 1);
        c[i] = ci;
    }
    int taps = 1, width = 1;
    if (mode == LEP_GS_LINEAR) {
        width = 2;
        for (int i = 0; i < nsp; ++i) { base[i] = lep_floor_index(c[i]); frac[i] = c[i] - (double)base[i]; }
    } else if (mode == LEP_GS_CUBIC) {
        width = 4;
        for (int i = 0; i < nsp; ++i) {
            const double f = floor(c[i]), t = c[i] - f, t1 = t + 1, t2 = 1 - t;
            base[i] = lep_floor_index(c[i]);
            if (base[i] != INT64_MIN) base[i] -= 1;
            cw[i][0] = ((A * t1 - 5 * A) * t1 + 8 * A) * t1 - 4 * A;
            cw[i][1] = ((A + 2) * t - (A + 3)) * t * t + 1;
            cw[i][2] = ((A + 2) * t2 - (A + 3)) * t2 * t2 + 1;
            cw[i][3] = ((A * (t2 + 1) - 5 * A) * (t2 + 1) + 8 * A) * (t2 + 1) - 4 * A;
        }
    }
    for (int i = 0; i < nsp; ++i) taps *= width;
    for (int t = 0; t < taps; ++t) {
        double wt = 1.0;
        int64_t at = 0;
        int inside = 1;
        for (int d = 0; d < nsp; ++d) {  /* x's spatial dims, outermost first: grid coordinate nsp - 1 - d */
            const int i = nsp - 1 - d;
            int span = 1;
            for (int e = i + 1; e < nsp; ++e) span *= width;
            const int k = (t / span) % width;  /* the corner's digit for coordinate i (coordinate 0 slowest) */
            int64_t j;
            if (mode == LEP_GS_NEAREST) j = lep_rint_index(c[i]);
            else j = base[i] == INT64_MIN ? INT64_MIN : base[i] + k;
            if (mode == LEP_GS_CUBIC && padding == LEP_GS_BORDER) {
                j = j < 0 ? 0 : j > size[i] - 1 ? size[i] - 1 : j;
            } else if (mode == LEP_GS_CUBIC && padding == LEP_GS_REFLECTION) {
                const double r = align ? lep_reflect((double)j, 0, (double)(size[i] - 1))
                                       : lep_reflect((double)j, -0.5, (double)size[i] - 0.5);
                j = lep_rint_index(r);
                j = j < 0 ? 0 : j > size[i] - 1 ? size[i] - 1 : j;
            }
            inside = inside && j >= 0 && j < size[i];
            at = at * in_sp[d] + (j < 0 ? 0 : j >= size[i] ? size[i] - 1 : j);
        }
        for (int i = 0; i < nsp && mode != LEP_GS_NEAREST; ++i) {  /* the weight, coordinate 0 first */
            int span = 1;
            for (int e = i + 1; e < nsp; ++e) span *= width;
            const int k = (t / span) % width;
            wt = wt * (mode == LEP_GS_LINEAR ? (k ? frac[i] : 1 - frac[i]) : cw[i][k]);
        }
        off[t] = at; w[t] = wt; ok[t] = (unsigned char)inside;
    }
    return taps;
}

/* grid_sample over nsp (1 to 3) spatial dims: x (N, C, in_sp...) and y (N, C, P) of type T, grid (N, P, nsp)
   with the innermost dim's coordinate first. Each output point's taps are found once and applied to every
   channel, summed in double and rounded once to T. */
#define LEP_GRID_SAMPLE(name, T)                                                                             \
static void name(const T* x, const double* grid, T* y, int64_t N, int64_t C, int nsp, const int64_t* in_sp,   \
                 int64_t P, int mode, int padding, int align) {                                               \
    int64_t S = 1;                                                                                            \
    for (int d = 0; d < nsp; ++d) S *= in_sp[d];                                                              \
    _Pragma("omp parallel for schedule(static) if (N * P * C > 16384)")                                      \
    for (int64_t q = 0; q < N * P; ++q) {                                                                     \
        const int64_t n = q / P, p = q % P;                                                                   \
        int64_t off[64];                                                                                      \
        double w[64];                                                                                         \
        unsigned char ok[64];                                                                                 \
        const int taps = lep_grid_taps(grid + q * nsp, nsp, in_sp, mode, padding, align, off, w, ok);         \
        for (int64_t ch = 0; ch < C; ++ch) {                                                                  \
            const T* xc = x + (n * C + ch) * S;                                                               \
            double acc;                                                                                       \
            if (mode == LEP_GS_NEAREST) {                                                                     \
                acc = ok[0] ? (double)xc[off[0]] : 0.0;                                                       \
            } else {                                                                                          \
                acc = 0.0;                                                                                    \
                for (int t = 0; t < taps; ++t) acc = acc + (ok[t] ? (double)xc[off[t]] : 0.0) * w[t];         \
            }                                                                                                 \
            y[(n * C + ch) * P + p] = (T)acc;                                                                 \
        }                                                                                                     \
    }                                                                                                         \
}
LEP_GRID_SAMPLE(lep_grid_sample_f32, float)
LEP_GRID_SAMPLE(lep_grid_sample_f64, double)

/* affine_grid: out (N, sizes..., nsp) = theta (N, nsp, nsp + 1) applied to each output position's normalized
   coordinates (x innermost first) and 1. */
static void lep_affine_grid(const double* theta, double* out, int64_t N, int nsp, const int64_t* sizes, int align) {
    int64_t P = 1;
    for (int d = 0; d < nsp; ++d) P *= sizes[d];
    for (int64_t q = 0; q < N * P; ++q) {
        const int64_t n = q / P;
        int64_t rem = q % P;
        double b[4];
        for (int d = nsp - 1; d >= 0; --d) {  /* sizes[d] is coordinate nsp - 1 - d */
            const int64_t s = sizes[d], i = rem % s;
            rem /= s;
            double v;
            if (align)  /* numpy.linspace(-1, 1, s) */
                v = s == 1 ? -1.0 : i == s - 1 ? 1.0 : (double)i * (2.0 / (double)(s - 1)) + -1.0;
            else v = ((double)i * 2 + 1) / (double)s - 1;
            b[nsp - 1 - d] = v;
        }
        b[nsp] = 1.0;
        for (int j = 0; j < nsp; ++j) {
            const double* t = theta + (n * nsp + j) * (nsp + 1);
            double acc = b[0] * t[0];
            for (int k = 1; k <= nsp; ++k) acc = acc + b[k] * t[k];
            out[q * nsp + j] = acc;
        }
    }
}

/* roi_align over x (N, C, H, W): out (R, C, OH, OW), the average (or max) of bilinear samples over a grid of
   each bin of each region. batch[r] must lie in [-N, N) (negative counts from the end); else the region's
   position goes to *bad_roi and nothing more is computed. */
static void lep_roi_align(const double* x, const double* rois, const int64_t* batch, double* out, int64_t N,
                          int64_t C, int64_t H, int64_t W, int64_t R, int64_t OH, int64_t OW, int max_mode,
                          int64_t sampling_ratio, double spatial_scale, double offset, int64_t* bad_roi) {
    *bad_roi = -1;
    for (int64_t r = 0; r < R; ++r)
        if (batch[r] < -N || batch[r] >= N) { *bad_roi = r; return; }
    #pragma omp parallel for schedule(static) if (R * C * OH * OW > 4096)
    for (int64_t r = 0; r < R; ++r) {
        const double x1 = rois[r * 4] * spatial_scale - offset, y1 = rois[r * 4 + 1] * spatial_scale - offset;
        const double x2 = rois[r * 4 + 2] * spatial_scale - offset, y2 = rois[r * 4 + 3] * spatial_scale - offset;
        double rw = x2 - x1, rh = y2 - y1;
        if (offset == 0) { rw = rw > 1.0 ? rw : 1.0; rh = rh > 1.0 ? rh : 1.0; }
        const double bh = rh / (double)OH, bw = rw / (double)OW;
        int64_t gh = sampling_ratio > 0 ? sampling_ratio : (int64_t)ceil(rh / (double)OH);
        int64_t gw = sampling_ratio > 0 ? sampling_ratio : (int64_t)ceil(rw / (double)OW);
        gh = gh > 1 ? gh : 1; gw = gw > 1 ? gw : 1;
        const int64_t b = batch[r] < 0 ? batch[r] + N : batch[r];
        for (int64_t ch = 0; ch < C; ++ch) {
            const double* img = x + (b * C + ch) * H * W;
            for (int64_t oh = 0; oh < OH; ++oh) for (int64_t ow = 0; ow < OW; ++ow) {
                double acc = 0.0;
                int first = 1;
                for (int64_t iy = 0; iy < gh; ++iy) for (int64_t ix = 0; ix < gw; ++ix) {
                    const double yy = y1 + (double)oh * bh + ((double)iy + 0.5) * bh / (double)gh;
                    const double xx = x1 + (double)ow * bw + ((double)ix + 0.5) * bw / (double)gw;
                    double val = 0.0;
                    if (yy >= -1.0 && yy <= (double)H && xx >= -1.0 && xx <= (double)W) {
                        double yc = yy > 0 ? yy : 0, xc = xx > 0 ? xx : 0;
                        int64_t y0 = (int64_t)floor(yc), x0 = (int64_t)floor(xc), y1i, x1i;
                        if (y0 >= H - 1) { y0 = y1i = H - 1; yc = (double)y0; } else y1i = y0 + 1;
                        if (x0 >= W - 1) { x0 = x1i = W - 1; xc = (double)x0; } else x1i = x0 + 1;
                        const double ly = yc - (double)y0, lx = xc - (double)x0, hy = 1 - ly, hx = 1 - lx;
                        const double t[4] = {hy * hx * img[y0 * W + x0], hy * lx * img[y0 * W + x1i],
                                             ly * hx * img[y1i * W + x0], ly * lx * img[y1i * W + x1i]};
                        if (max_mode) {
                            val = lep_nanmax(lep_nanmax(t[0], t[1]), lep_nanmax(t[2], t[3]));
                        } else {
                            val = 0.0 + t[0] + t[1] + t[2] + t[3];
                        }
                    }
                    acc = !max_mode ? acc + val : first ? val : lep_nanmax(acc, val);
                    first = 0;
                }
                out[((r * C + ch) * OH + oh) * OW + ow] = max_mode ? acc : acc / (double)(gh * gw);
            }
        }
    }
}

#pragma GCC pop_options
