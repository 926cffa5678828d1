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

/* dst[o, j, i] = sum over the taps k of src[o, idx[j, k], i] * w[j, k] (the extrapolation value outside). */
static void lep_resize_axis(const double* src, double* dst, int64_t outer, int64_t in_n, int64_t out_n,
                            int64_t inner, int n, const int64_t* idx, const double* w, const unsigned char* outside,
                            double extrapolation) {
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

/* Resize `data` (shape in_shape, owned by the caller) to out_shape one axis at a time, skipping the axes the
   reference skips; scales[a] == 0 means out / in; roi (2 * rank values: starts, then ends) may be NULL.
   Returns the result: `data` itself when no axis changes, else a buffer the caller frees. */
static double* lep_resize(double* data, const int64_t* in_shape, const int64_t* out_shape, int rank,
                          const double* scales, const double* roi, const lep_resize_modes* m) {
    int64_t shape[16];
    double* cur = data;
    for (int a = 0; a < rank; ++a) shape[a] = in_shape[a];
    for (int a = 0; a < rank; ++a) {
        const double s = scales[a] != 0 ? scales[a] : (double)out_shape[a] / (double)in_shape[a];
        const double lo = roi ? roi[a] : 0.0, hi = roi ? roi[a + rank] : 1.0;
        if (lep_isclose(s, 1.0) && out_shape[a] == shape[a] && (!roi || (lo == 0.0 && lep_isclose(hi, 1.0))))
            continue;
        int64_t outer = 1, inner = 1;
        for (int b = 0; b < a; ++b) outer *= shape[b];
        for (int b = a + 1; b < rank; ++b) inner *= shape[b];
        double* next = (double*)lep_scratch((size_t)(outer * out_shape[a] * inner) * sizeof(double));
        if (out_shape[a] > 0) {
            int64_t* idx; double* w; unsigned char* outside;
            const int n = lep_resize_taps(m, shape[a], out_shape[a], s, lo, hi, &idx, &w, &outside);
            lep_resize_axis(cur, next, outer, shape[a], out_shape[a], inner, n, idx, w, outside, m->extrapolation);
            free(idx); free(w); free(outside);
        }
        if (cur != data) free(cur);
        cur = next;
        shape[a] = out_shape[a];
    }
    return cur;
}

#pragma GCC pop_options
