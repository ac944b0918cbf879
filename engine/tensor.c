/* tensor.c — device tensor descriptors, views, host transfers and the
 * f16/bf16 conversions used when weights are loaded.
 */
#include "tensor.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

struct _SdclStorage
{
  gint        refs;
  SdclEngine *engine;
  cl_mem      mem;
  gsize       bytes;     /* real size of mem (pool buffers may be larger) */
  gsize       size;      /* bytes the tensor asked for: views stay inside */
};

static void
storage_unref (SdclStorage *s)
{
  if (--s->refs > 0)
    return;
  sdcl_engine_pool_give (s->engine, s->mem, s->bytes);
  g_free (s);
}

gsize
sdcl_dtype_size (SdclDtype dtype)
{
  return dtype == SDCL_DTYPE_F16 ? 2 : 4;
}

const gchar *
sdcl_dtype_name (SdclDtype dtype)
{
  return dtype == SDCL_DTYPE_F16 ? "f16" : "f32";
}

static void
set_contiguous_strides (SdclTensor *t)
{
  t->nb[0] = sdcl_dtype_size (t->dtype);
  for (int i = 1; i < 4; i++)
    t->nb[i] = t->nb[i - 1] * t->ne[i - 1];
}

SdclTensor *
sdcl_tensor_new (SdclEngine *engine, SdclDtype dtype, guint n_dims, const gint64 *ne,
                 GError **error)
{
  g_return_val_if_fail (n_dims >= 1 && n_dims <= 4, NULL);
  gsize bytes = sdcl_dtype_size (dtype);
  gint64 dims[4] = { 1, 1, 1, 1 };
  for (guint i = 0; i < n_dims; i++)
    {
      if (ne[i] < 0 || !g_size_checked_mul (&bytes, bytes, (gsize) ne[i]))
        {
          g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE,
                       "tensor size out of range (dimension %u is %" G_GINT64_FORMAT ")",
                       i, ne[i]);
          return NULL;
        }
      dims[i] = ne[i];
    }
  gsize got = 0;
  cl_mem mem = sdcl_engine_pool_take (engine, bytes, &got, error);
  if (!mem)
    return NULL;

  SdclStorage *storage = g_new0 (SdclStorage, 1);
  storage->refs = 1;
  storage->engine = engine;
  storage->mem = mem;
  storage->bytes = got;
  storage->size = bytes;

  SdclTensor *t = g_new0 (SdclTensor, 1);
  t->dtype = dtype;
  memcpy (t->ne, dims, sizeof dims);
  set_contiguous_strides (t);
  t->mem = mem;
  t->storage = storage;
  t->engine = engine;
  return t;
}

SdclTensor *
sdcl_tensor_new_4d (SdclEngine *engine, SdclDtype dtype, gint64 ne0, gint64 ne1,
                    gint64 ne2, gint64 ne3, GError **error)
{
  const gint64 ne[4] = { ne0, ne1, ne2, ne3 };
  return sdcl_tensor_new (engine, dtype, 4, ne, error);
}

SdclTensor *
sdcl_tensor_new_like (const SdclTensor *like, GError **error)
{
  return sdcl_tensor_new (like->engine, like->dtype, 4, like->ne, error);
}

SdclTensor *
sdcl_tensor_view (const SdclTensor *t, const gint64 ne[4], const gsize *nb, gsize offset,
                  GError **error)
{
  SdclTensor *v = g_new0 (SdclTensor, 1);
  v->dtype = t->dtype;
  memcpy (v->ne, ne, sizeof v->ne);
  if (nb)
    memcpy (v->nb, nb, sizeof v->nb);
  else
    set_contiguous_strides (v);
  v->mem = t->mem;
  v->offset = t->offset + offset;
  v->storage = t->storage;
  v->engine = t->engine;

  /* the last byte the view can touch must lie inside the storage */
  gsize last = v->offset;
  gboolean ok = TRUE;
  for (int i = 0; i < 4 && ok; i++)
    {
      gsize step;
      if (v->ne[i] <= 0)
        {
          ok = v->ne[i] == 0;
          last = v->offset;   /* empty view */
          break;
        }
      ok = g_size_checked_mul (&step, v->nb[i], (gsize) (v->ne[i] - 1))
        && g_size_checked_add (&last, last, step);
    }
  if (!ok || last + sdcl_dtype_size (v->dtype) > t->storage->size)
    {
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE,
                   "view [%" G_GINT64_FORMAT " x %" G_GINT64_FORMAT " x %" G_GINT64_FORMAT
                   " x %" G_GINT64_FORMAT "] at byte %" G_GSIZE_FORMAT
                   " reaches past the end of its tensor",
                   ne[0], ne[1], ne[2], ne[3], offset);
      g_free (v);
      return NULL;
    }
  v->storage->refs++;
  g_strlcpy (v->name, t->name, sizeof v->name);
  return v;
}

SdclTensor *
sdcl_tensor_reshape (const SdclTensor *t, gint64 ne0, gint64 ne1, gint64 ne2, gint64 ne3,
                     GError **error)
{
  const gint64 ne[4] = { ne0, ne1, ne2, ne3 };
  if (!sdcl_tensor_is_contiguous (t) || ne0 * ne1 * ne2 * ne3 != sdcl_tensor_numel (t))
    {
      g_autofree gchar *d = sdcl_tensor_describe (t);
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE,
                   "cannot reshape %s to [%" G_GINT64_FORMAT " x %" G_GINT64_FORMAT
                   " x %" G_GINT64_FORMAT " x %" G_GINT64_FORMAT "]", d, ne0, ne1, ne2, ne3);
      return NULL;
    }
  return sdcl_tensor_view (t, ne, NULL, 0, error);
}

void
sdcl_tensor_free (SdclTensor *t)
{
  if (!t)
    return;
  storage_unref (t->storage);
  g_free (t);
}

void
sdcl_tensor_set_name (SdclTensor *t, const gchar *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_vsnprintf (t->name, sizeof t->name, fmt, ap);
  va_end (ap);
}

gint64
sdcl_tensor_numel (const SdclTensor *t)
{
  return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

gsize
sdcl_tensor_bytes (const SdclTensor *t)
{
  return (gsize) sdcl_tensor_numel (t) * sdcl_dtype_size (t->dtype);
}

gboolean
sdcl_tensor_is_contiguous (const SdclTensor *t)
{
  gsize expect = sdcl_dtype_size (t->dtype);
  for (int i = 0; i < 4; i++)
    {
      if (t->ne[i] != 1 && t->nb[i] != expect)
        return FALSE;
      expect *= t->ne[i];
    }
  return TRUE;
}

gboolean
sdcl_tensor_same_shape (const SdclTensor *a, const SdclTensor *b)
{
  return memcmp (a->ne, b->ne, sizeof a->ne) == 0;
}

gchar *
sdcl_tensor_describe (const SdclTensor *t)
{
  return g_strdup_printf ("%s%s[%" G_GINT64_FORMAT " x %" G_GINT64_FORMAT " x %" G_GINT64_FORMAT
                          " x %" G_GINT64_FORMAT "] %s",
                          t->name, t->name[0] ? " " : "", t->ne[0], t->ne[1], t->ne[2],
                          t->ne[3], sdcl_dtype_name (t->dtype));
}

static gboolean
require_contiguous (const SdclTensor *t, const gchar *what, GError **error)
{
  if (sdcl_tensor_is_contiguous (t))
    return TRUE;
  g_autofree gchar *d = sdcl_tensor_describe (t);
  g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE, "%s needs a contiguous tensor, got %s",
               what, d);
  return FALSE;
}

gboolean
sdcl_tensor_write (SdclTensor *t, gconstpointer data, GError **error)
{
  if (!require_contiguous (t, "writing to the device", error))
    return FALSE;
  cl_int err = clEnqueueWriteBuffer (sdcl_engine_queue (t->engine), t->mem, CL_TRUE, t->offset,
                                     sdcl_tensor_bytes (t), data, 0, NULL, NULL);
  return sdcl_cl_check (err, "clEnqueueWriteBuffer", error);
}

gboolean
sdcl_tensor_read (const SdclTensor *t, gpointer data, GError **error)
{
  if (!require_contiguous (t, "reading from the device", error))
    return FALSE;
  cl_int err = clEnqueueReadBuffer (sdcl_engine_queue (t->engine), t->mem, CL_TRUE, t->offset,
                                    sdcl_tensor_bytes (t), data, 0, NULL, NULL);
  return sdcl_cl_check (err, "clEnqueueReadBuffer", error);
}

gpointer
sdcl_tensor_map_write (SdclTensor *t, GError **error)
{
  if (!require_contiguous (t, "mapping for writing", error))
    return NULL;
  cl_int err = CL_SUCCESS;
  gpointer p = clEnqueueMapBuffer (sdcl_engine_queue (t->engine), t->mem, CL_TRUE,
                                   CL_MAP_WRITE_INVALIDATE_REGION, t->offset,
                                   sdcl_tensor_bytes (t), 0, NULL, NULL, &err);
  if (!sdcl_cl_check (err, "clEnqueueMapBuffer", error))
    return NULL;
  return p;
}

gboolean
sdcl_tensor_unmap (SdclTensor *t, gpointer mapped, GError **error)
{
  cl_int err = clEnqueueUnmapMemObject (sdcl_engine_queue (t->engine), t->mem, mapped, 0, NULL,
                                        NULL);
  if (err == CL_SUCCESS)
    err = clFinish (sdcl_engine_queue (t->engine));
  return sdcl_cl_check (err, "clEnqueueUnmapMemObject", error);
}

gboolean
sdcl_tensor_write_f32 (SdclTensor *t, const gfloat *data, GError **error)
{
  if (t->dtype == SDCL_DTYPE_F32)
    return sdcl_tensor_write (t, data, error);
  gint64 n = sdcl_tensor_numel (t);
  g_autofree guint16 *h = g_new (guint16, MAX (n, 1));
  sdcl_f32_to_f16_n (data, h, n);
  return sdcl_tensor_write (t, h, error);
}

gfloat *
sdcl_tensor_read_f32 (const SdclTensor *t, GError **error)
{
  gint64 n = sdcl_tensor_numel (t);
  g_autofree gfloat *out = g_new (gfloat, MAX (n, 1));
  if (t->dtype == SDCL_DTYPE_F32)
    {
      if (!sdcl_tensor_read (t, out, error))
        return NULL;
      return g_steal_pointer (&out);
    }
  g_autofree guint16 *h = g_new (guint16, MAX (n, 1));
  if (!sdcl_tensor_read (t, h, error))
    return NULL;
  sdcl_f16_to_f32_n (h, out, n);
  return g_steal_pointer (&out);
}

/* ---- f16 / bf16 ----------------------------------------------------------- */

guint16
sdcl_f32_to_f16 (gfloat f)
{
  guint32 x;
  memcpy (&x, &f, 4);
  guint32 sign = (x >> 16) & 0x8000;
  guint32 exp = (x >> 23) & 0xff;
  guint32 mant = x & 0x7fffff;

  if (exp == 0xff)                       /* inf or nan */
    return sign | 0x7c00 | (mant ? 0x200 | (mant >> 13) : 0);
  gint32 e = (gint32) exp - 127 + 15;
  if (e >= 31)                           /* overflow -> inf */
    return sign | 0x7c00;
  if (e <= 0)                            /* subnormal or zero */
    {
      if (e < -10)
        return sign;
      mant |= 0x800000;
      guint32 shift = 14 - e;
      guint32 half = mant >> shift;
      guint32 rem = mant & ((1u << shift) - 1);
      guint32 mid = 1u << (shift - 1);
      if (rem > mid || (rem == mid && (half & 1)))
        half++;
      return sign | half;
    }
  guint32 half = sign | (e << 10) | (mant >> 13);
  guint32 rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
    half++;                              /* may carry into the exponent: correct */
  return half;
}

gfloat
sdcl_f16_to_f32 (guint16 h)
{
  guint32 sign = (guint32) (h & 0x8000) << 16;
  guint32 exp = (h >> 10) & 0x1f;
  guint32 mant = h & 0x3ff;
  guint32 x;
  if (exp == 0)
    {
      gfloat f = ldexpf ((gfloat) mant, -24);
      return sign ? -f : f;
    }
  if (exp == 31)
    x = sign | 0x7f800000 | (mant << 13);
  else
    x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  gfloat f;
  memcpy (&f, &x, 4);
  return f;
}

/* Arrays: with F16C (every x86-64 CPU with AVX2, checked at run time)
 * eight at a time with vcvtps2ph / vcvtph2ps, which round to nearest even
 * and give the same bits as the functions above (test-ops checks every
 * half and a sweep of floats); elsewhere those functions. Model loading
 * converts a billion values this way. */
#if defined (__x86_64__) && defined (__GNUC__)
#include <immintrin.h>

__attribute__ ((target ("avx,f16c"))) static void
f32_to_f16_f16c (const gfloat *f, guint16 *h, gsize n)
{
  gsize i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128 ((__m128i *) (h + i),
                      _mm256_cvtps_ph (_mm256_loadu_ps (f + i),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; i++)
    h[i] = sdcl_f32_to_f16 (f[i]);
}

__attribute__ ((target ("avx,f16c"))) static void
f16_to_f32_f16c (const guint16 *h, gfloat *f, gsize n)
{
  gsize i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps (f + i, _mm256_cvtph_ps (_mm_loadu_si128 ((const __m128i *) (h + i))));
  for (; i < n; i++)
    f[i] = sdcl_f16_to_f32 (h[i]);
}

static gboolean
have_f16c (void)
{
  static gint have = -1;
  if (have < 0)
    {
      __builtin_cpu_init ();
      have = __builtin_cpu_supports ("avx") && __builtin_cpu_supports ("f16c")
             && g_strcmp0 (g_getenv ("SDCL_NO_F16C"), "1") != 0;
    }
  return have;
}
#endif

void
sdcl_f32_to_f16_n (const gfloat *f, guint16 *h, gsize n)
{
#if defined (__x86_64__) && defined (__GNUC__)
  if (have_f16c ())
    {
      f32_to_f16_f16c (f, h, n);
      return;
    }
#endif
  for (gsize i = 0; i < n; i++)
    h[i] = sdcl_f32_to_f16 (f[i]);
}

void
sdcl_f16_to_f32_n (const guint16 *h, gfloat *f, gsize n)
{
#if defined (__x86_64__) && defined (__GNUC__)
  if (have_f16c ())
    {
      f16_to_f32_f16c (h, f, n);
      return;
    }
#endif
  for (gsize i = 0; i < n; i++)
    f[i] = sdcl_f16_to_f32 (h[i]);
}

gfloat
sdcl_bf16_to_f32 (guint16 b)
{
  guint32 x = (guint32) b << 16;
  gfloat f;
  memcpy (&f, &x, 4);
  return f;
}
