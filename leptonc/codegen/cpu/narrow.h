/* The narrow floats (8-bit OCP FP8 and f4e2m1fn), one code per byte in its low bits, to and from f32/f64, bit
   for bit as ml_dtypes converts them. A format is its exponent and mantissa bits, its bias and its kind:
     LEP_IEEE  inf and NaNs as IEEE (f8e5m2); out of range becomes inf;
     LEP_FN    no inf, the all-ones code is NaN (f8e4m3fn); out of range becomes NaN;
     LEP_FNUZ  no inf, no negative zero, 0x80 is the one NaN (f8e4m3fnuz, f8e5m2fnuz); out of range is NaN;
     LEP_F4    neither inf nor NaN (f4e2m1fn); out of range saturates, NaN becomes a zero.
   Rounding is to nearest even; `saturate` (a clamp to the largest finite value first) is the caller's. */
enum { LEP_IEEE, LEP_FN, LEP_FNUZ, LEP_F4 };

static inline float lep_narrow_to_f32(uint8_t code, int e, int m, int bias, int kind) {
    const int top = e + m;
    const unsigned ex = (code >> m) & ((1u << e) - 1), man = code & ((1u << m) - 1);
    const float sign = (code >> top) & 1 ? -1.0f : 1.0f;
    if (kind == LEP_FNUZ && code == 0x80) return NAN;
    if (kind == LEP_FN && ex == (1u << e) - 1 && man == (1u << m) - 1) return copysignf(NAN, sign);
    if (kind == LEP_IEEE && ex == (1u << e) - 1) return man ? copysignf(NAN, sign) : sign * INFINITY;
    if (ex == 0) return sign * ldexpf((float)man, 1 - bias - m);
    return sign * ldexpf((float)((1u << m) | man), (int)ex - bias - m);
}

static inline uint8_t lep_narrow_from_f64(double x, int e, int m, int bias, int kind) {
    const int top = e + m;
    const uint8_t sign = signbit(x) ? (uint8_t)(1u << top) : 0;
    const unsigned ones = (1u << e) - 1;
    if (isnan(x)) {
        if (kind == LEP_F4) return sign ^ (uint8_t)(1u << top);   /* (ml_dtypes gives the zero of the other sign) */
        if (kind == LEP_FNUZ) return 0x80;
        return sign | (uint8_t)(kind == LEP_FN ? (ones << m) | ((1u << m) - 1) : (ones << m) | (1u << (m - 1)));
    }
    const int emax = (int)(kind == LEP_IEEE ? ones - 1 : ones) - bias;
    const double largest = ldexp(2.0 - ldexp(1.0, kind == LEP_FN ? 1 - m : -m), emax);
    const uint8_t over = kind == LEP_IEEE ? sign | (uint8_t)(ones << m)
                       : kind == LEP_F4 ? sign | (uint8_t)((1u << top) - 1)
                       : kind == LEP_FN ? sign | (uint8_t)((ones << m) | ((1u << m) - 1)) : 0x80;
    const double a = fabs(x);
    if (isinf(a)) return over;
    int ex;
    (void)frexp(a, &ex);
    ex = ex - 1 < 1 - bias ? 1 - bias : ex - 1;            /* a = f * 2^ex, f in [1, 2), or a subnormal */
    const double r = nearbyint(ldexp(a, m - ex));           /* a in units of its last place, to even */
    if (ldexp(r, ex - m) > largest) return over;
    if (r == 0) return kind == LEP_FNUZ ? 0 : sign;
    if (r >= ldexp(1.0, m + 1)) return sign | (uint8_t)(((ex + 1 + bias) << m));   /* rounded up a binade */
    if (r < ldexp(1.0, m)) return sign | (uint8_t)r;                               /* a subnormal */
    return sign | (uint8_t)(((ex + bias) << m) | ((unsigned)r - (1u << m)));
}

/* f8e8m0fnu, the shared scale of the MX formats: code c is 2^(c - 127), 0xFF is NaN. To it from |x|, as the
   `cast` op: round picks the power (0 nearest, ties up; 1 up; 2 down); 0, inf and powers out of range are
   NaN, or with `saturate` the nearest end (0 -> 2^-127, inf -> 2^127). */
static inline float lep_e8m0_to_f32(uint8_t code) {
    return code == 0xFF ? NAN : ldexpf(1.0f, (int)code - 127);
}
static inline uint8_t lep_e8m0_from_f64(double x, int saturate, int round) {
    const double a = fabs(x);
    if (isnan(a)) return 0xFF;
    int e = 0;
    if (isinf(a) || a == 0) {
        if (!saturate) return 0xFF;
        e = isinf(a) ? 127 : -127;
    } else {
        const double m = 2 * frexp(a, &e);   /* a = m * 2^(e - 1), m in [1, 2) */
        e = e - 1 + (round == 1 ? m > 1 : round == 0 ? m >= 1.5 : 0);
        if (e < -127 || e > 127) {
            if (!saturate) return 0xFF;
            e = e < -127 ? -127 : 127;
        }
    }
    return (uint8_t)(e + 127);
}
