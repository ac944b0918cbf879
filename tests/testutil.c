/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"

guint32
sdcl_test_hash (guint32 x)
{
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

gfloat *
sdcl_test_seeded (guint32 seed, gsize n, gfloat scale, gfloat offset)
{
  gfloat *v = g_new (gfloat, MAX (n, 1));
  const guint32 base = sdcl_test_hash (seed);
  for (gsize i = 0; i < n; i++)
    {
      const gfloat m = (gfloat) (sdcl_test_hash ((guint32) i + base) >> 8);
      /* volatile keeps the two float32 roundings apart, as numpy does them */
      volatile gfloat u = m * (gfloat) (1.0 / 16777216.0) * 2.0f - 1.0f;
      volatile gfloat su = scale * u;
      v[i] = offset + su;
    }
  return v;
}

void
sdcl_test_round_f16 (gfloat *v, gsize n)
{
  for (gsize i = 0; i < n; i++)
    v[i] = sdcl_f16_to_f32 (sdcl_f32_to_f16 (v[i]));
}

SdclTestError
sdcl_test_compare (const gfloat *got, const gfloat *want, gsize n)
{
  SdclTestError e = { 0, 0, 0 };
  gdouble num = 0, den = 0;
  for (gsize i = 0; i < n; i++)
    {
      const gdouble d = (gdouble) got[i] - want[i];
      if (isnan (got[i]) && !isnan (want[i]))
        e.max_abs = INFINITY;
      e.max_abs = MAX (e.max_abs, fabs (d));
      e.ref_max = MAX (e.ref_max, fabs ((gdouble) want[i]));
      num += d * d;
      den += (gdouble) want[i] * want[i];
    }
  e.nmse = den > 0 ? num / den : num;
  return e;
}

void
sdcl_test_assert_close (const gchar *what, const gfloat *got, const gfloat *want, gsize n,
                        gdouble tol_rel, gdouble tol_nmse)
{
  SdclTestError e = sdcl_test_compare (got, want, n);
  const gdouble rel = e.ref_max > 0 ? e.max_abs / e.ref_max : e.max_abs;
  g_test_message ("%s: max abs error %.3g (%.3g of the reference's max %.3g), nmse %.3g",
                  what, e.max_abs, rel, e.ref_max, e.nmse);
  if (!(rel <= tol_rel && e.nmse <= tol_nmse))
    sdcl_test_fail ("%s: expected max abs error <= %.3g of the reference's max and nmse <= %.3g, "
                    "got %.3g (abs %.3g) and nmse %.3g", what, tol_rel, tol_nmse, rel, e.max_abs, e.nmse);
}

gchar *
sdcl_test_fixture (const gchar *name)
{
  return g_build_filename (SDCL_FIXTURES_DIR, name, NULL);
}

guint64
sdcl_test_rss_peak (void)
{
  g_autofree gchar *s = NULL;
  if (!g_file_get_contents ("/proc/self/status", &s, NULL, NULL))
    return 0;
  const gchar *p = strstr (s, "VmHWM:");
  return p ? g_ascii_strtoull (p + 6, NULL, 10) * 1024 : 0;
}

/* Starts VmHWM again from the current RSS (Linux 4.0 and later). */
void
sdcl_test_rss_peak_reset (void)
{
  g_file_set_contents ("/proc/self/clear_refs", "5", 1, NULL);
}

void
sdcl_test_fail_at (const gchar *file, gint line, const gchar *func, const gchar *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree gchar *msg = g_strdup_vprintf (format, args);
  va_end (args);
  g_assertion_message (G_LOG_DOMAIN, file, line, func, msg);
  abort ();
}
