/* rng.c — PyTorch's CPU generator and torch.randn for float32, bit for
 * bit; see rng.h. Sources of each step: ATen's core/MT19937RNGEngine.h
 * (the engine), CPUGeneratorImpl.cpp (random64, the normal cache),
 * core/DistributionsHelper.h + TransformationHelper.h (uniform and normal
 * distributions), native/cpu/DistributionTemplates.h (normal_fill and its
 * AVX2 twin), native/cpu/avx_mathfun.h (the vector log and sincos).
 *
 * Every float operation here must round exactly as torch's compiled code
 * does, so a multiply-add is fused only where this file calls fmaf(): at
 * the places where GCC fused the intrinsics' separate multiplies and adds
 * in the torch wheel (GCC 13, -mfma, -ffp-contract=fast, the C++ default).
 * Contraction is switched off below for builds with FMA in the target
 * (-march=native; GCC contracts in GNU modes, clang within expressions).
 */
#include "rng.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize ("fp-contract=off")
#endif

/* ---- mt19937 ---------------------------------------------------------------------- */

#define MT_N 624
#define MT_M 397

struct _SdclRng
{
  guint32       state[MT_N];
  guint         next;              /* index of the next state word to temper; MT_N: twist first */
  SdclRngFlavor flavor;
  gboolean      has_cached_normal; /* torch's next_double_normal_sample */
  gdouble       cached_normal;
};

static void
mt_twist (SdclRng *rng)
{
  guint32 *s = rng->state;
  for (guint i = 0; i < MT_N; i++)
    {
      const guint32 y = (s[i] & 0x80000000u) | (s[(i + 1) % MT_N] & 0x7fffffffu);
      s[i] = s[(i + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
  rng->next = 0;
}

guint32
sdcl_rng_random (SdclRng *rng)
{
  if (rng->next == MT_N)
    mt_twist (rng);
  guint32 y = rng->state[rng->next++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

SdclRng *
sdcl_rng_new_full (guint64 seed, SdclRngFlavor flavor)
{
  SdclRng *rng = g_new0 (SdclRng, 1);
  /* at::mt19937 keeps the 64-bit seed for initial_seed() but seeds the
   * state with its low word (Knuth's initialisation, as std::mt19937). */
  rng->state[0] = (guint32) seed;
  for (guint i = 1; i < MT_N; i++)
    rng->state[i] = 1812433253u * (rng->state[i - 1] ^ (rng->state[i - 1] >> 30)) + i;
  rng->next = MT_N;
  rng->flavor = flavor;
  return rng;
}

SdclRng *
sdcl_rng_new (guint64 seed)
{
  return sdcl_rng_new_full (seed, SDCL_RNG_TORCH_AVX2);
}

void
sdcl_rng_free (SdclRng *rng)
{
  g_free (rng);
}

/* uniform_real_distribution<float>(0, 1): 24 random bits, exact. */
static inline gfloat
uniform_f32 (SdclRng *rng)
{
  return (gfloat) (sdcl_rng_random (rng) & 0xffffffu) * 0x1p-24f;
}

/* uniform_real_distribution<double>(0, 1): random64() is the first draw
 * in the high word, the second in the low; 53 bits of it. */
static inline gdouble
uniform_f64 (SdclRng *rng)
{
  const guint64 hi = sdcl_rng_random (rng);
  const guint64 lo = sdcl_rng_random (rng);
  return (gdouble) (((hi << 32) | lo) & ((G_GUINT64_CONSTANT (1) << 53) - 1)) * 0x1p-53;
}

/* ---- avx_mathfun's log and sincos, one lane ------------------------------------------ */

/* The constants are float arrays initialised from double literals there:
 * each is the double rounded to float, which can differ from a float
 * literal of the same digits, hence the casts. */
#define F(x) ((gfloat) (x))

static inline guint32
bits_of (gfloat f)
{
  guint32 u;
  memcpy (&u, &f, 4);
  return u;
}

static inline gfloat
float_of (guint32 u)
{
  gfloat f;
  memcpy (&f, &u, 4);
  return f;
}

/* Cephes logf: x = m·2^e with m in [sqrt(1/2), sqrt(2)), log(m) by a
 * degree-9 polynomial in m - 1, e·log(2) added in two parts. Valid for
 * x > 0 (torch only passes u1 in [2^-24, 1]). */
static gfloat
cephes_logf (gfloat x)
{
  const gfloat one = 1.0f;
  const guint32 min_norm_bits = 0x00800000u;
  if (bits_of (x) < min_norm_bits)        /* max(x, FLT_MIN) for positive x */
    x = float_of (min_norm_bits);

  const gint32 exponent = (gint32) (bits_of (x) >> 23) - 0x7f;
  x = float_of ((bits_of (x) & ~0x7f800000u) | bits_of (0.5f));      /* [0.5, 1) */
  gfloat e = (gfloat) exponent + one;

  /* below sqrt(1/2): one less in the exponent, x = 2x - 1 as (x - 1) + x */
  const gboolean small = x < F (0.707106781186547524);
  const gfloat tmp = small ? x : 0.0f;
  x = x - one;
  e = e - (small ? one : 0.0f);
  x = x + tmp;

  const gfloat z = x * x;
  gfloat y = F (7.0376836292E-2);
  y = fmaf (y, x, F (-1.1514610310E-1));
  y = fmaf (y, x, F (1.1676998740E-1));
  y = fmaf (y, x, F (-1.2420140846E-1));
  y = fmaf (y, x, F (1.4249322787E-1));
  y = fmaf (y, x, F (-1.6668057665E-1));
  y = fmaf (y, x, F (2.0000714765E-1));
  y = fmaf (y, x, F (-2.4999993993E-1));
  y = fmaf (y, x, F (3.3333331174E-1));
  y = y * x;
  /* y·z + e·q1: the product y·z is fused, e·q1 is rounded first */
  y = fmaf (y, z, e * F (-2.12194440e-4));
  y = fmaf (-z, F (0.5), y);
  x = x + y;
  return fmaf (e, F (0.693359375), x);
}

/* Cephes sincosf: j = nearest even multiple of pi/4 (by truncating
 * |x|·4/pi then rounding up to even), x - j·pi/4 in three parts, then a
 * sine and a cosine polynomial, swapped and signed by j's octant. */
static void
cephes_sincosf (gfloat theta, gfloat *sin_out, gfloat *cos_out)
{
  guint32 sign_sin = bits_of (theta) & 0x80000000u;
  gfloat x = float_of (bits_of (theta) & 0x7fffffffu);

  gint32 j = (gint32) (x * F (1.27323954473516));       /* cvttps: truncate */
  j = (j + 1) & ~1;
  const gfloat y = (gfloat) j;

  sign_sin ^= (guint32) (j & 4) << 29;
  const guint32 sign_cos = (guint32) (~(j - 2) & 4) << 29;
  const gboolean sine_poly_is_sin = (j & 2) == 0;

  x = fmaf (y, F (-0.78515625), x);
  x = fmaf (y, F (-2.4187564849853515625e-4), x);
  x = fmaf (y, F (-3.77489497744594108e-8), x);

  const gfloat z = x * x;

  /* cosine polynomial: 1 - z/2 + z²·(c2 + c1·z + c0·z²); the last multiply
   * by z fuses into the subtraction of the rounded z/2 */
  gfloat c = fmaf (F (2.443315711809948E-005), z, F (-1.388731625493765E-003));
  c = fmaf (c, z, F (4.166664568298827E-002));
  c = c * z;
  c = fmaf (c, z, -(z * F (0.5)));
  c = c + 1.0f;

  /* sine polynomial: x + x·z·(s2 + s1·z + s0·z²) */
  gfloat s = fmaf (F (-1.9515295891E-4), z, F (8.3321608736E-3));
  s = fmaf (s, z, F (-1.6666654611E-1));
  s = s * z;
  s = fmaf (s, x, x);

  /* The vector code picks each result by masking both polynomials and
   * adding the masked-out +0, which turns -0 into +0; so do we. */
  const gfloat sin_v = (sine_poly_is_sin ? s : c) + 0.0f;
  const gfloat cos_v = (sine_poly_is_sin ? c : s) + 0.0f;
  *sin_out = float_of (bits_of (sin_v) ^ sign_sin);
  *cos_out = float_of (bits_of (cos_v) ^ sign_cos);
}

/* ---- Box–Muller over 16 uniforms ------------------------------------------------------ */

/* normal_fill_16_AVX2: u1 = 1 - data[j] in (0, 1] for the log, u2 =
 * data[j + 8] for the angle; the results go through fmadd(n, std, mean)
 * with std 1, mean 0, i.e. n + 0. */
static void
normal_fill_16_avx2 (gfloat *data)
{
  const gfloat two_pi = (gfloat) (2.0f * G_PI);
  for (guint j = 0; j < 8; j++)
    {
      const gfloat u1 = 1.0f - data[j];
      const gfloat u2 = data[j + 8];
      const gfloat radius = sqrtf (-2.0f * cephes_logf (u1));
      const gfloat theta = two_pi * u2;
      gfloat sin_t, cos_t;
      cephes_sincosf (theta, &sin_t, &cos_t);
      data[j] = radius * cos_t + 0.0f;
      data[j + 8] = radius * sin_t + 0.0f;
    }
}

/* normal_fill_16<float>: libm in float, the angle computed in double
 * (2.0f * pi<double> * u2) and rounded to float. */
static void
normal_fill_16_scalar (gfloat *data)
{
  for (guint j = 0; j < 8; j++)
    {
      const gfloat u1 = 1.0f - data[j];
      const gfloat u2 = data[j + 8];
      const gfloat radius = sqrtf (-2.0f * logf (u1));
      const gfloat theta = (gfloat) (2.0 * G_PI * (gdouble) u2);
      data[j] = radius * cosf (theta) + 0.0f;
      data[j + 8] = radius * sinf (theta) + 0.0f;
    }
}

/* normal_distribution<double> for tensors under 16 elements: the pair
 * comes from two double uniforms, the sine half is kept in the generator
 * for the next call (torch.manual_seed clears it, normal_fill ignores it).
 * Both halves leave through val * std + mean with std 1, mean 0. */
static gfloat
normal_one (SdclRng *rng)
{
  if (rng->has_cached_normal)
    {
      rng->has_cached_normal = FALSE;
      return (gfloat) (rng->cached_normal + 0.0);
    }
  const gdouble u1 = uniform_f64 (rng);
  const gdouble u2 = uniform_f64 (rng);
  const gdouble r = sqrt (-2.0 * log1p (-u2));
  const gdouble theta = 2.0 * G_PI * u1;
  rng->cached_normal = r * sin (theta);
  rng->has_cached_normal = TRUE;
  return (gfloat) (r * cos (theta) + 0.0);
}

void
sdcl_rng_randn (SdclRng *rng, gfloat *out, gsize n)
{
  g_return_if_fail (rng != NULL && (out != NULL || n == 0));

  if (n < 16)
    {
      for (gsize i = 0; i < n; i++)
        out[i] = normal_one (rng);
      return;
    }

  void (*fill16) (gfloat *) = rng->flavor == SDCL_RNG_TORCH_SCALAR
                               ? normal_fill_16_scalar : normal_fill_16_avx2;
  /* every uniform first, then the blocks in place */
  for (gsize i = 0; i < n; i++)
    out[i] = uniform_f32 (rng);
  for (gsize i = 0; i + 16 <= n; i += 16)
    fill16 (out + i);
  /* a partial last block: the last 16 values are drawn again and redone */
  if (n % 16 != 0)
    {
      gfloat *tail = out + n - 16;
      for (guint i = 0; i < 16; i++)
        tail[i] = uniform_f32 (rng);
      fill16 (tail);
    }
}
