/* testutil.h — shared helpers for the engine tests: the seeded input
 * generator that tests/reference/make_op_fixtures.py mirrors, comparison
 * with a normalised error, and fixture paths.
 */
#pragma once

#include <glib.h>

/* lowbias32 hash (see tests/reference/README.md). */
guint32 sdcl_test_hash (guint32 x);

/* v[i] = offset + scale·((h(i + h(seed)) >> 8)·2⁻²⁴·2 − 1), float32 with
 * the same two roundings as numpy. Returns n floats (g_free). */
gfloat *sdcl_test_seeded (guint32 seed, gsize n, gfloat scale, gfloat offset);

/* Rounds every value through f16 (round to nearest even), in place. */
void sdcl_test_round_f16 (gfloat *v, gsize n);

typedef struct
{
  gdouble max_abs;      /* max |got − want| */
  gdouble ref_max;      /* max |want| */
  gdouble nmse;         /* Σ(got − want)² / Σ want² */
} SdclTestError;

SdclTestError sdcl_test_compare (const gfloat *got, const gfloat *want, gsize n);

/* Asserts rel = max_abs / ref_max <= tol_rel and nmse <= tol_nmse, with a
 * message that names the case and the figures. */
void sdcl_test_assert_close (const gchar *what, const gfloat *got, const gfloat *want, gsize n,
                             gdouble tol_rel, gdouble tol_nmse);

/* Path of a file in tests/fixtures (g_free). */
gchar *sdcl_test_fixture (const gchar *name);

/* Peak resident set size of this process since the last reset (VmHWM), in
 * bytes; 0 where /proc does not say. */
guint64 sdcl_test_rss_peak (void);
/* Resets the peak to the present resident size. */
void sdcl_test_rss_peak_reset (void);

/* Fails the test with a formatted message and aborts. Use it rather than
 * g_error() in anything that runs OpenCL: g_error() stops at a breakpoint
 * trap, and a SIGTRAP handler the OpenCL runtime's compiler installs
 * returns from it, leaving g_error() spinning forever. */
#define sdcl_test_fail(...) sdcl_test_fail_at (__FILE__, __LINE__, G_STRFUNC, __VA_ARGS__)
void sdcl_test_fail_at (const gchar *file, gint line, const gchar *func, const gchar *format, ...)
  G_GNUC_PRINTF (4, 5) G_GNUC_NORETURN;
