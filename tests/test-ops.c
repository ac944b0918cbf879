/* test-ops.c — every op against PyTorch. Small cases compare whole
 * outputs stored in tests/fixtures/ops.safetensors; the real SD 1.5 shapes
 * regenerate their inputs from seeds and compare 16384 sampled outputs from
 * ops-large.safetensors (both made by tests/reference/make_op_fixtures.py).
 *
 * Tolerances: the reference is float64 on the same (f16-rounded) inputs, so
 * what remains is fp32 accumulation error. Unless a case says otherwise,
 * max |error| <= 1e-4 of the output's max and NMSE <= 1e-9.
 */
#include <math.h>
#include <string.h>

#include "ops.h"
#include "safetensors.h"
#include "testutil.h"

#define TOL_REL  1e-4
#define TOL_NMSE 1e-9

static SdclEngine *engine;
static SdclSafetensors *small, *large;

/* ---- fixture access ------------------------------------------------------- */

/* Reads a fixture tensor as floats and its shape in engine order (innermost
 * first, padded with 1). */
static gfloat *
fixture (SdclSafetensors *st, const gchar *name, gint64 ne[4])
{
  g_autoptr (GError) error = NULL;
  const SdclSafetensorsEntry *e = sdcl_safetensors_get (st, name);
  if (!e)
    sdcl_test_fail ("fixture tensor '%s' is missing; regenerate with tests/reference/make_op_fixtures.py",
                    name);
  g_assert_cmpint (e->n_dims, <=, 4);
  for (int i = 0; i < 4; i++)
    ne[i] = i < (int) e->n_dims ? e->shape[e->n_dims - 1 - i] : 1;
  gint64 numel = 0;
  gfloat *v = sdcl_safetensors_read_f32 (st, name, &numel, &error);
  g_assert_no_error (error);
  return v;
}

static gboolean
fixture_is_f16 (SdclSafetensors *st, const gchar *name)
{
  return sdcl_safetensors_get (st, name)->dtype == SDCL_ST_F16;
}

static SdclTensor *
upload (const gfloat *v, const gint64 ne[4], SdclDtype dtype)
{
  g_autoptr (GError) error = NULL;
  SdclTensor *t = sdcl_tensor_new (engine, dtype, 4, ne, &error);
  g_assert_no_error (error);
  sdcl_tensor_write_f32 (t, v, &error);
  g_assert_no_error (error);
  return t;
}

/* Uploads fixture tensor "<case>.<name>" as f32. */
static SdclTensor *
input (const gchar *c, const gchar *name)
{
  g_autofree gchar *full = g_strdup_printf ("%s.%s", c, name);
  gint64 ne[4];
  g_autofree gfloat *v = fixture (small, full, ne);
  return upload (v, ne, SDCL_DTYPE_F32);
}

static void
check_out (const gchar *c, SdclTensor *got, gdouble tol_rel, gdouble tol_nmse)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *name = g_strdup_printf ("%s.out", c);
  gint64 ne[4];
  g_autofree gfloat *want = fixture (small, name, ne);
  g_assert_nonnull (got);
  if (memcmp (ne, got->ne, sizeof ne) != 0)
    sdcl_test_fail ("%s: expected shape [%" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT
                    " %" G_GINT64_FORMAT "], got [%" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %"
                    G_GINT64_FORMAT " %" G_GINT64_FORMAT "]", c, ne[0], ne[1], ne[2], ne[3],
                    got->ne[0], got->ne[1], got->ne[2], got->ne[3]);
  g_autofree gfloat *v = sdcl_tensor_read_f32 (got, &error);
  g_assert_no_error (error);
  sdcl_test_assert_close (c, v, want, sdcl_tensor_numel (got), tol_rel, tol_nmse);
}

/* The weight of case c in the GEMM layout, with the dtype the fixture has. */
static SdclTensor *
linear_weight (const gchar *c)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *name = g_strdup_printf ("%s.w", c);
  gint64 ne[4];
  g_autofree gfloat *w = fixture (small, name, ne);
  SdclTensor *t = sdcl_linear_weight_new (engine, fixture_is_f16 (small, name) ? SDCL_DTYPE_F16
                                                                              : SDCL_DTYPE_F32,
                                          w, ne[1], ne[0], &error);
  g_assert_no_error (error);
  return t;
}

static SdclTensor *
conv_weight (const gchar *c)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *name = g_strdup_printf ("%s.w", c);
  gint64 ne[4];
  g_autofree gfloat *w = fixture (small, name, ne);
  SdclTensor *t = sdcl_conv2d_weight_new (engine, fixture_is_f16 (small, name) ? SDCL_DTYPE_F16
                                                                              : SDCL_DTYPE_F32,
                                          w, ne[3], ne[2], ne[1], ne[0], &error);
  g_assert_no_error (error);
  return t;
}

/* ---- the seeded generator and f16 ------------------------------------------ */

static void
test_seeded_generator (void)
{
  gint64 ne[4];
  g_autofree gfloat *want = fixture (small, "seeded_check.out", ne);
  g_autofree gfloat *want16 = fixture (small, "seeded_check_f16.out", ne);
  g_autofree gfloat *got = sdcl_test_seeded (42, 64, 1.0f, 0.0f);
  g_assert_cmpmem (got, 64 * sizeof (gfloat), want, 64 * sizeof (gfloat));
  sdcl_test_round_f16 (got, 64);
  g_assert_cmpmem (got, 64 * sizeof (gfloat), want16, 64 * sizeof (gfloat));
}

static void
test_f16_conversion (void)
{
  /* round to nearest even at the halfway points, overflow, subnormals */
  g_assert_cmphex (sdcl_f32_to_f16 (1.0f), ==, 0x3c00);
  g_assert_cmphex (sdcl_f32_to_f16 (1.0f + 1.0f / 2048), ==, 0x3c00);      /* tie -> even */
  g_assert_cmphex (sdcl_f32_to_f16 (1.0f + 3.0f / 2048), ==, 0x3c02);      /* tie -> even */
  g_assert_cmphex (sdcl_f32_to_f16 (65504.0f), ==, 0x7bff);
  g_assert_cmphex (sdcl_f32_to_f16 (65520.0f), ==, 0x7c00);                /* rounds to inf */
  g_assert_cmphex (sdcl_f32_to_f16 (-INFINITY), ==, 0xfc00);
  g_assert_cmphex (sdcl_f32_to_f16 (5.9604645e-08f), ==, 0x0001);          /* smallest subnormal */
  g_assert_cmphex (sdcl_f32_to_f16 (2.9802322e-08f), ==, 0x0000);          /* tie -> even (0) */
  g_assert_true (isnan (sdcl_f16_to_f32 (sdcl_f32_to_f16 (NAN))));
  for (guint32 h = 0; h < 0x7c00; h++)                                    /* every finite half */
    g_assert_cmphex (sdcl_f32_to_f16 (sdcl_f16_to_f32 (h)), ==, h);
  g_assert_cmpfloat (sdcl_bf16_to_f32 (0x3f80), ==, 1.0f);

  /* the array forms (F16C where the CPU has it) give the same bits: every
   * half, and a sweep over float bit patterns with the halfway cases */
  g_autofree guint16 *halves = g_new (guint16, 65536);
  g_autofree gfloat *wide = g_new (gfloat, 65536);
  for (guint32 h = 0; h < 65536; h++)
    halves[h] = h;
  sdcl_f16_to_f32_n (halves, wide, 65536);
  for (guint32 h = 0; h < 65536; h++)
    {
      const gfloat one = sdcl_f16_to_f32 (h);
      if (isnan (one) ? !isnan (wide[h]) : memcmp (&one, &wide[h], 4) != 0)
        sdcl_test_fail ("f16 %04x: array %g, scalar %g", h, wide[h], one);
    }
  const gsize n = 1 << 20;
  g_autofree gfloat *f = g_new (gfloat, n);
  g_autofree guint16 *got = g_new (guint16, n);
  for (gsize i = 0; i < n; i++)
    {
      /* i odd: a float halfway between two halves (ties) or next to one */
      const guint32 bits = i % 2 ? ((guint32) (i * 2654435761u) & 0xffffe000u) | 0x1000u
                                 : (guint32) (i * 4099u * 1031u);
      memcpy (&f[i], &bits, 4);
    }
  sdcl_f32_to_f16_n (f, got, n);
  for (gsize i = 0; i < n; i++)
    {
      const guint16 one = sdcl_f32_to_f16 (f[i]);
      guint32 bits;
      memcpy (&bits, &f[i], 4);
      if (isnan (f[i]) ? (got[i] & 0x7c00) != 0x7c00 || !(got[i] & 0x3ff) : got[i] != one)
        sdcl_test_fail ("f32 %08x: array %04x, scalar %04x", bits, got[i], one);
    }
}

/* ---- matmul, linear, conv -------------------------------------------------- */

static void
test_matmul_f32 (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclTensor) a = input ("matmul_f32", "a");
  g_autoptr (SdclTensor) b = input ("matmul_f32", "b");
  g_autoptr (SdclTensor) y = sdcl_matmul (a, b, FALSE, &error);
  g_assert_no_error (error);
  check_out ("matmul_f32", y, TOL_REL, TOL_NMSE);

  /* the same product with b given transposed */
  gint perm[4] = { 1, 0, 2, 3 };
  g_autoptr (SdclTensor) bt_view = sdcl_permute (b, perm, &error);
  g_autoptr (SdclTensor) bt = sdcl_contiguous (bt_view, &error);
  g_assert_no_error (error);
  g_autoptr (SdclTensor) y2 = sdcl_matmul (a, bt, TRUE, &error);
  g_assert_no_error (error);
  check_out ("matmul_f32", y2, TOL_REL, TOL_NMSE);
}

/* A transposing copy (dimensions 0 and 1 of a view whose dimension 1 is
 * the contiguous one, into a dense tensor), as between an image's planes
 * and its tokens: the blocked kernel (transpose_f32) on whole blocks,
 * blocks cut by the edges, shapes under one block, batch dimensions and a
 * view that starts inside its buffer, element for element against the
 * host. */
static void
test_copy_transpose (void)
{
  static const gint64 shapes[][4] = {
    { 16, 16, 1, 1 }, { 37, 53, 3, 2 }, { 64, 320, 2, 1 }, { 5, 40, 1, 1 }, { 40, 5, 2, 1 },
    { 17, 33, 1, 3 },
  };
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    {
      g_autoptr (GError) error = NULL;
      const gint64 n0 = shapes[s][0], n1 = shapes[s][1], n2 = shapes[s][2], n3 = shapes[s][3];
      const gsize n = n0 * n1 * n2 * n3, skip = 3;    /* the view starts 3 rows in */
      /* stored as [n1, n0 + skip, n2, n3]: element (i1, i0) of each plane */
      const gint64 ne[4] = { n1, n0 + skip, n2, n3 };
      g_autofree gfloat *host = sdcl_test_seeded (70 + s, n1 * (n0 + skip) * n2 * n3, 1.0f, 0.0f);
      g_autoptr (SdclTensor) t = sdcl_tensor_new (engine, SDCL_DTYPE_F32, 4, ne, &error);
      g_assert_no_error (error);
      g_assert_true (sdcl_tensor_write (t, host, &error));
      const gint64 vne[4] = { n1, n0, n2, n3 };
      g_autoptr (SdclTensor) v = sdcl_tensor_view (t, vne, t->nb, skip * t->nb[1], &error);
      const gint perm[4] = { 1, 0, 2, 3 };
      g_autoptr (SdclTensor) p = sdcl_permute (v, perm, &error);
      g_autoptr (SdclTensor) d = sdcl_contiguous (p, &error);
      g_assert_no_error (error);
      g_assert_cmpint (d->ne[0], ==, n0);
      g_assert_cmpint (d->ne[1], ==, n1);
      g_autofree gfloat *got = g_new (gfloat, n);
      g_assert_true (sdcl_tensor_read (d, got, &error));
      guint wrong = 0;
      for (gint64 b = 0; b < n2 * n3; b++)
        for (gint64 i1 = 0; i1 < n1; i1++)
          for (gint64 i0 = 0; i0 < n0; i0++)
            wrong += got[(b * n1 + i1) * n0 + i0]
                     != host[(b * (n0 + skip) + skip + i0) * n1 + i1];
      if (wrong)
        g_test_fail_printf ("transpose %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                            "x%" G_GINT64_FORMAT ": %u elements differ", n0, n1, n2, n3, wrong);

      /* the view added to a dense tensor of its shape (tokens added to an
         image), into a new tensor and in place: the same kernel adding on
         the way, to the float sum */
      g_autofree gfloat *res = sdcl_test_seeded (90 + s, n, 1.0f, 0.5f);
      g_autoptr (SdclTensor) r = upload (res, d->ne, SDCL_DTYPE_F32);
      g_autoptr (SdclTensor) sum = sdcl_binary (r, p, SDCL_BINARY_ADD, &error);
      g_assert_no_error (error);
      g_autofree gfloat *got_sum = g_new (gfloat, n), *got_into = g_new (gfloat, n);
      g_assert_true (sdcl_tensor_read (sum, got_sum, &error));
      g_assert_true (sdcl_binary_into (r, p, SDCL_BINARY_ADD, &error));
      g_assert_true (sdcl_tensor_read (r, got_into, &error));
      g_assert_no_error (error);
      guint wrong_sum = 0, wrong_into = 0;
      for (gint64 b = 0; b < n2 * n3; b++)
        for (gint64 i1 = 0; i1 < n1; i1++)
          for (gint64 i0 = 0; i0 < n0; i0++)
            {
              const gsize o = (b * n1 + i1) * n0 + i0;
              const gfloat want = res[o] + host[(b * (n0 + skip) + skip + i0) * n1 + i1];
              wrong_sum += got_sum[o] != want;
              wrong_into += got_into[o] != want;
            }
      if (wrong_sum || wrong_into)
        g_test_fail_printf ("transposed sum %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "x%"
                            G_GINT64_FORMAT "x%" G_GINT64_FORMAT ": %u elements differ, "
                            "%u in place", n0, n1, n2, n3, wrong_sum, wrong_into);
    }
}

/* Copies whose two sides lay out dimensions 0 and 1 (and 2) densely, run
 * by run (copy_runs_f32): the parts of concatenations along each
 * dimension, with runs shorter than, equal to and not a multiple of the
 * kernel's 16, element for element against the host; and a slice of
 * channels (planes dense, images strided) made contiguous. */
static void
test_copy_runs (void)
{
  static const gint64 shapes[][4] = {
    { 5, 3, 4, 2 }, { 4, 4, 3, 2 }, { 37, 11, 5, 3 }, { 64, 64, 3, 2 },
  };
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    for (gint dim = 0; dim < 4; dim++)
      {
        g_autoptr (GError) error = NULL;
        gint64 na[4], nb[4], ny[4];
        memcpy (na, shapes[s], sizeof na);
        memcpy (nb, shapes[s], sizeof nb);
        nb[dim] += 1 + dim;
        memcpy (ny, na, sizeof ny);
        ny[dim] += nb[dim];
        const gsize n_a = na[0] * na[1] * na[2] * na[3], n_b = nb[0] * nb[1] * nb[2] * nb[3];
        g_autofree gfloat *ha = sdcl_test_seeded (110 + s, n_a, 1.0f, 0.0f);
        g_autofree gfloat *hb = sdcl_test_seeded (120 + s, n_b, 1.0f, 0.0f);
        g_autoptr (SdclTensor) a = upload (ha, na, SDCL_DTYPE_F32);
        g_autoptr (SdclTensor) b = upload (hb, nb, SDCL_DTYPE_F32);
        g_autoptr (SdclTensor) y = sdcl_concat (a, b, dim, &error);
        g_assert_no_error (error);
        const gsize n_y = ny[0] * ny[1] * ny[2] * ny[3];
        g_autofree gfloat *got = g_new (gfloat, n_y);
        g_assert_true (sdcl_tensor_read (y, got, &error));
        guint wrong = 0;
        for (gint64 i3 = 0; i3 < ny[3]; i3++)
          for (gint64 i2 = 0; i2 < ny[2]; i2++)
            for (gint64 i1 = 0; i1 < ny[1]; i1++)
              for (gint64 i0 = 0; i0 < ny[0]; i0++)
                {
                  gint64 i[4] = { i0, i1, i2, i3 };
                  const gboolean in_a = i[dim] < na[dim];
                  const gint64 *ne = in_a ? na : nb;
                  if (!in_a)
                    i[dim] -= na[dim];
                  const gfloat want = (in_a ? ha : hb)[((i[3] * ne[2] + i[2]) * ne[1] + i[1])
                                                       * ne[0] + i[0]];
                  wrong += got[((i3 * ny[2] + i2) * ny[1] + i1) * ny[0] + i0] != want;
                }
        if (wrong)
          g_test_fail_printf ("concat %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                              "x%" G_GINT64_FORMAT " along %d: %u elements differ",
                              na[0], na[1], na[2], na[3], dim, wrong);
      }

  /* channels 1 .. 3 of a [37, 11, 5, 3] tensor */
  g_autoptr (GError) error = NULL;
  const gint64 ne[4] = { 37, 11, 5, 3 };
  g_autofree gfloat *host = sdcl_test_seeded (130, 37 * 11 * 5 * 3, 1.0f, 0.0f);
  g_autoptr (SdclTensor) t = upload (host, ne, SDCL_DTYPE_F32);
  const gint64 vne[4] = { 37, 11, 3, 3 };
  g_autoptr (SdclTensor) v = sdcl_tensor_view (t, vne, t->nb, t->nb[2], &error);
  g_autoptr (SdclTensor) c = v ? sdcl_contiguous (v, &error) : NULL;
  g_assert_no_error (error);
  g_autofree gfloat *got = g_new (gfloat, 37 * 11 * 3 * 3);
  g_assert_true (sdcl_tensor_read (c, got, &error));
  guint wrong = 0;
  for (gint64 i3 = 0; i3 < 3; i3++)
    for (gint64 i2 = 0; i2 < 3; i2++)
      for (gint64 i = 0; i < 37 * 11; i++)
        wrong += got[(i3 * 3 + i2) * 37 * 11 + i] != host[(i3 * 5 + i2 + 1) * 37 * 11 + i];
  if (wrong)
    g_test_fail_printf ("channel slice: %u elements differ", wrong);
}

static void
test_matmul_batched (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclTensor) a = input ("matmul_batched", "a");
  g_autoptr (SdclTensor) b = input ("matmul_batched", "b");
  g_autoptr (SdclTensor) y = sdcl_matmul (a, b, FALSE, &error);
  g_assert_no_error (error);
  check_out ("matmul_batched", y, TOL_REL, TOL_NMSE);
}

static void
run_linear (gconstpointer data)
{
  const gchar *c = data;
  g_autoptr (GError) error = NULL;
  g_autofree gchar *bias_name = g_strdup_printf ("%s.bias", c);
  g_autoptr (SdclTensor) x = input (c, "x");
  g_autoptr (SdclTensor) w = linear_weight (c);
  g_autoptr (SdclTensor) bias = sdcl_safetensors_get (small, bias_name) ? input (c, "bias") : NULL;
  g_autoptr (SdclTensor) y = sdcl_linear (x, w, bias, &error);
  g_assert_no_error (error);
  check_out (c, y, TOL_REL, TOL_NMSE);
}

/* The direct convolution as GPUs run it: im2col and the tiled GEMM
 * (SDCL_CONV_GEMM=1, SDCL_GEMM_TILED=1). */
static SdclTensor *
conv_as_gpu (const SdclTensor *x, const SdclTensor *w, const SdclTensor *b, gint stride,
             gint pad, gint pad_end, GError **error)
{
  g_setenv ("SDCL_CONV_GEMM", "1", TRUE);
  g_setenv ("SDCL_GEMM_TILED", "1", TRUE);
  SdclTensor *y = sdcl_conv2d_with (x, w, b, stride, pad, pad_end, SDCL_CONV_DIRECT, error);
  g_unsetenv ("SDCL_CONV_GEMM");
  g_unsetenv ("SDCL_GEMM_TILED");
  return y;
}

static void
run_conv (gconstpointer data)
{
  const gchar *c = data;
  g_autoptr (GError) error = NULL;
  g_autofree gchar *bias_name = g_strdup_printf ("%s.bias", c);
  g_autoptr (SdclTensor) x = input (c, "x");
  g_autoptr (SdclTensor) w = conv_weight (c);
  g_autoptr (SdclTensor) bias = sdcl_safetensors_get (small, bias_name) ? input (c, "bias") : NULL;
  const gint stride = strstr (c, "s2") ? 2 : 1;
  const gint pad = strstr (c, "1x1") ? 0 : 1;
  g_autoptr (SdclTensor) y = sdcl_conv2d (x, w, bias, stride, pad, &error);
  g_assert_no_error (error);
  check_out (c, y, TOL_REL, TOL_NMSE);
  /* both algorithms, whichever AUTO picked for these (small) shapes, and
     the direct one also as GPUs run it */
  for (SdclConvAlgorithm a = SDCL_CONV_DIRECT; a <= SDCL_CONV_WINOGRAD; a++)
    {
      g_autoptr (SdclTensor) ya = sdcl_conv2d_with (x, w, bias, stride, pad, pad, a, &error);
      g_assert_no_error (error);
      check_out (c, ya, TOL_REL, TOL_NMSE);
    }
  g_autoptr (SdclTensor) yg = conv_as_gpu (x, w, bias, stride, pad, pad, &error);
  g_assert_no_error (error);
  check_out (c, yg, TOL_REL, TOL_NMSE);
}

/* ---- norms, softmax, attention ----------------------------------------------- */

static void
test_group_norm (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclTensor) x = input ("groupnorm", "x");
  g_autoptr (SdclTensor) g = input ("groupnorm", "gamma");
  g_autoptr (SdclTensor) b = input ("groupnorm", "beta");
  g_autoptr (SdclTensor) y = sdcl_group_norm (x, g, b, 32, 1e-5f, FALSE, &error);
  g_assert_no_error (error);
  check_out ("groupnorm", y, TOL_REL, TOL_NMSE);
}

static void
test_group_norm_silu (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclTensor) x = input ("groupnorm_silu", "x");
  g_autoptr (SdclTensor) g = input ("groupnorm_silu", "gamma");
  g_autoptr (SdclTensor) b = input ("groupnorm_silu", "beta");
  g_autoptr (SdclTensor) y = sdcl_group_norm (x, g, b, 32, 1e-6f, TRUE, &error);
  g_assert_no_error (error);
  check_out ("groupnorm_silu", y, TOL_REL, TOL_NMSE);
}

static void
test_layer_norm (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclTensor) x = input ("layernorm", "x");
  g_autoptr (SdclTensor) g = input ("layernorm", "gamma");
  g_autoptr (SdclTensor) b = input ("layernorm", "beta");
  g_autoptr (SdclTensor) y = sdcl_layer_norm (x, g, b, 1e-5f, &error);
  g_assert_no_error (error);
  check_out ("layernorm", y, TOL_REL, TOL_NMSE);
}

static void
test_softmax (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclTensor) x = input ("softmax", "x");
  g_autoptr (SdclTensor) y = sdcl_softmax (x, &error);
  g_assert_no_error (error);
  check_out ("softmax", y, TOL_REL, TOL_NMSE);
}

typedef struct
{
  const gchar *name;
  gint heads;
  gboolean causal;
} AttentionCase;

/* Every attention path: the single kernel (attention_f32), its tiled form
 * (GPUs; head widths 32, 40, 64, 80, else the single kernel), query blocks
 * through matmul and softmax (CPUs) and the fused one (AVX-512); see
 * use_attention_kernel() in ops.c. */
static const gchar *attention_paths[] = { "kernel", "tiled", "blocks", "flash" };

static void
run_attention (gconstpointer data)
{
  const AttentionCase *c = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclTensor) q = input (c->name, "q");
  g_autoptr (SdclTensor) k = input (c->name, "k");
  g_autoptr (SdclTensor) v = input (c->name, "v");
  for (guint i = 0; i < G_N_ELEMENTS (attention_paths); i++)
    {
      g_setenv ("SDCL_ATTENTION", attention_paths[i], TRUE);
      g_autoptr (SdclTensor) y = sdcl_attention (q, k, v, c->heads, c->causal, &error);
      g_assert_no_error (error);
      g_test_message ("path: %s", attention_paths[i]);
      check_out (c->name, y, TOL_REL, TOL_NMSE);
    }
  g_unsetenv ("SDCL_ATTENTION");
}

/* q, k and v as strided views into one fused [3·HD, S] projection, the
 * way a self-attention layer produces them. */
static void
test_attention_views (void)
{
  g_autoptr (GError) error = NULL;
  const gchar *c = "attn_self_40";
  gint64 ne[4];
  g_autofree gfloat *q = fixture (small, "attn_self_40.q", ne);
  g_autofree gfloat *k = fixture (small, "attn_self_40.k", ne);
  g_autofree gfloat *v = fixture (small, "attn_self_40.v", ne);
  const gint64 HD = ne[0], rows = ne[1] * ne[2];
  g_autofree gfloat *fused = g_new (gfloat, 3 * HD * rows);
  for (gint64 r = 0; r < rows; r++)
    {
      memcpy (fused + (3 * r + 0) * HD, q + r * HD, HD * sizeof (gfloat));
      memcpy (fused + (3 * r + 1) * HD, k + r * HD, HD * sizeof (gfloat));
      memcpy (fused + (3 * r + 2) * HD, v + r * HD, HD * sizeof (gfloat));
    }
  const gint64 fne[4] = { 3 * HD, ne[1], ne[2], 1 };
  g_autoptr (SdclTensor) t = upload (fused, fne, SDCL_DTYPE_F32);
  g_autoptr (SdclTensor) qv = sdcl_tensor_view (t, ne, t->nb, 0, &error);
  g_autoptr (SdclTensor) kv = sdcl_tensor_view (t, ne, t->nb, HD * 4, &error);
  g_autoptr (SdclTensor) vv = sdcl_tensor_view (t, ne, t->nb, 2 * HD * 4, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (attention_paths); i++)
    {
      g_setenv ("SDCL_ATTENTION", attention_paths[i], TRUE);
      g_autoptr (SdclTensor) y = sdcl_attention (qv, kv, vv, 3, FALSE, &error);
      g_assert_no_error (error);
      check_out (c, y, TOL_REL, TOL_NMSE);
    }
  g_unsetenv ("SDCL_ATTENTION");
}

/* ---- elementwise ----------------------------------------------------------------- */

static void
run_unary (gconstpointer data)
{
  const gchar *c = data;
  const SdclUnary op = g_str_equal (c, "silu") ? SDCL_UNARY_SILU
                     : g_str_equal (c, "gelu") ? SDCL_UNARY_GELU : SDCL_UNARY_QUICK_GELU;
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclTensor) x = input (c, "x");
  g_autoptr (SdclTensor) y = sdcl_unary (x, op, &error);
  g_assert_no_error (error);
  check_out (c, y, TOL_REL, TOL_NMSE);
}

static void
test_geglu (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclTensor) x = input ("geglu", "x");
  g_autoptr (SdclTensor) y = sdcl_geglu (x, &error);
  g_assert_no_error (error);
  check_out ("geglu", y, TOL_REL, TOL_NMSE);
}

static void
run_binary (gconstpointer data)
{
  const gchar *c = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclTensor) a = input (c, "a");
  g_autoptr (SdclTensor) b = input (c, "b");
  g_autoptr (SdclTensor) y = sdcl_binary (a, b, g_str_has_prefix (c, "mul") ? SDCL_BINARY_MUL
                                                                          : SDCL_BINARY_ADD,
                                          &error);
  g_assert_no_error (error);
  check_out (c, y, 0, 0);   /* one rounding, as in PyTorch: exact */
}

static void
test_upsample (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclTensor) x = input ("upsample2x", "x");
  g_autoptr (SdclTensor) y = sdcl_upsample_nearest2x (x, &error);
  g_assert_no_error (error);
  check_out ("upsample2x", y, 0, 0);
}

static void
test_concat (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclTensor) a = input ("concat", "a");
  g_autoptr (SdclTensor) b = input ("concat", "b");
  g_autoptr (SdclTensor) y = sdcl_concat (a, b, 2, &error);
  g_assert_no_error (error);
  check_out ("concat", y, 0, 0);
}

static void
test_timestep_embedding (void)
{
  g_autoptr (GError) error = NULL;
  gint64 ne[4];
  g_autofree gfloat *t = fixture (small, "timestep_emb.t", ne);
  g_autoptr (SdclTensor) y = sdcl_timestep_embedding (engine, t, ne[0], 320, TRUE, 0.0f, &error);
  g_assert_no_error (error);
  /* float32 arguments t·freq carry ~5e-5 rad of rounding at t = 999 (the
   * reference is float64), so the bound is absolute on values in [-1, 1] */
  check_out ("timestep_emb", y, 2e-4, 1e-8);
}

/* ---- real SD 1.5 shapes ------------------------------------------------------------ */

static SdclTensor *
seeded_tensor (guint32 seed, const gint64 ne[4], gfloat scale, gfloat offset)
{
  g_autofree gfloat *v = sdcl_test_seeded (seed, ne[0] * ne[1] * ne[2] * ne[3], scale, offset);
  return upload (v, ne, SDCL_DTYPE_F32);
}

static gfloat *
seeded_f16 (guint32 seed, gsize n, gfloat scale)
{
  gfloat *w = sdcl_test_seeded (seed, n, scale, 0.0f);
  sdcl_test_round_f16 (w, n);
  return w;
}

/* Attention on odd shapes, against a double-precision product here: query
 * counts that are not multiples of the fused kernel's 6 rows, key counts
 * around its sub-blocks of 32, its blocks of 128 (and its panels of 16),
 * head sizes from 8 to 48
 * (one to three vectors of V), two batches. Every path that applies to the
 * device runs (attention_flash16 only where vectors are 16 wide). */
static void
test_attention_shapes (void)
{
  static const gint shapes[][4] = {   /* queries, keys, heads, head dim */
    { 7, 5, 2, 8 }, { 13, 17, 1, 16 }, { 20, 33, 3, 24 }, { 37, 64, 2, 44 },
    { 6, 31, 1, 48 }, { 50, 100, 2, 40 }, { 1, 1, 1, 12 }, { 9, 127, 1, 40 },
    { 13, 129, 2, 32 }, { 8, 300, 1, 48 },
  };
  g_autoptr (GError) error = NULL;
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    {
      const gint Sq = shapes[s][0], Skv = shapes[s][1], H = shapes[s][2], D = shapes[s][3];
      const gint HD = H * D, B = 2;
      const gint64 qne[4] = { HD, Sq, B, 1 }, kne[4] = { HD, Skv, B, 1 };
      g_autofree gfloat *qv = sdcl_test_seeded (40 + s, (gsize) HD * Sq * B, 1.5f, 0.0f);
      g_autofree gfloat *kv = sdcl_test_seeded (50 + s, (gsize) HD * Skv * B, 1.5f, 0.0f);
      g_autofree gfloat *vv = sdcl_test_seeded (60 + s, (gsize) HD * Skv * B, 1.0f, 0.0f);
      g_autoptr (SdclTensor) q = upload (qv, qne, SDCL_DTYPE_F32);
      g_autoptr (SdclTensor) k = upload (kv, kne, SDCL_DTYPE_F32);
      g_autoptr (SdclTensor) v = upload (vv, kne, SDCL_DTYPE_F32);
      g_autofree gfloat *want = g_new (gfloat, (gsize) HD * Sq * B);
      g_autofree gdouble *p = g_new (gdouble, Skv);
      for (gint b = 0; b < B; b++)
        for (gint h = 0; h < H; h++)
          for (gint i = 0; i < Sq; i++)
            {
              const gfloat *qi = qv + ((gsize) b * Sq + i) * HD + h * D;
              gdouble m = -G_MAXDOUBLE, sum = 0;
              for (gint j = 0; j < Skv; j++)
                {
                  const gfloat *kj = kv + ((gsize) b * Skv + j) * HD + h * D;
                  gdouble dot = 0;
                  for (gint d = 0; d < D; d++)
                    dot += (gdouble) qi[d] * kj[d];
                  p[j] = dot / sqrt ((gdouble) D);
                  m = MAX (m, p[j]);
                }
              for (gint j = 0; j < Skv; j++)
                sum += p[j] = exp (p[j] - m);
              for (gint d = 0; d < D; d++)
                {
                  gdouble o = 0;
                  for (gint j = 0; j < Skv; j++)
                    o += p[j] * vv[((gsize) b * Skv + j) * HD + h * D + d];
                  want[((gsize) b * Sq + i) * HD + h * D + d] = (gfloat) (o / sum);
                }
            }
      for (guint i = 0; i < G_N_ELEMENTS (attention_paths); i++)
        {
          g_setenv ("SDCL_ATTENTION", attention_paths[i], TRUE);
          g_autoptr (SdclTensor) y = sdcl_attention (q, k, v, H, FALSE, &error);
          g_assert_no_error (error);
          g_autofree gfloat *got = sdcl_tensor_read_f32 (y, &error);
          g_assert_no_error (error);
          g_autofree gchar *what = g_strdup_printf ("%s %dx%d, %d heads x %d", attention_paths[i],
                                                    Sq, Skv, H, D);
          sdcl_test_assert_close (what, got, want, (gsize) HD * Sq * B, TOL_REL, TOL_NMSE);
        }
      g_unsetenv ("SDCL_ATTENTION");
    }
}

/* Compares the sampled reference outputs of case c with y. */
static void
check_large (const gchar *c, SdclTensor *y, gdouble tol_rel, gdouble tol_nmse)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *iname = g_strdup_printf ("%s.idx", c);
  g_autofree gchar *vname = g_strdup_printf ("%s.val", c);
  g_autofree gchar *sname = g_strdup_printf ("%s.shape", c);
  gint64 ne[4], sne[4], n;
  g_autofree gfloat *want = fixture (large, vname, ne);
  const SdclSafetensorsEntry *ie = sdcl_safetensors_get (large, iname);
  g_autofree gfloat *shape = fixture (large, sname, sne);
  g_assert_nonnull (ie);
  n = ne[0];
  for (gint64 i = 0; i < sne[0]; i++)
    g_assert_cmpint (y->ne[sne[0] - 1 - i], ==, (gint64) shape[i]);
  const gint64 *idx = (const gint64 *) ie->data;
  g_autofree gfloat *all = sdcl_tensor_read_f32 (y, &error);
  g_assert_no_error (error);
  g_autofree gfloat *got = g_new (gfloat, n);
  for (gint64 i = 0; i < n; i++)
    {
      g_assert_cmpint (idx[i], <, sdcl_tensor_numel (y));
      got[i] = all[idx[i]];
    }
  sdcl_test_assert_close (c, got, want, n, tol_rel, tol_nmse);
}

static void
test_large_conv (gconstpointer data)
{
  const gboolean s2 = GPOINTER_TO_INT (data);
  g_autoptr (GError) error = NULL;
  const gint64 xne[4] = { 64, 64, 320, 1 }, bne[4] = { 320, 1, 1, 1 };
  const gsize wn = 320 * 320 * 9;
  g_autoptr (SdclTensor) x = seeded_tensor (1, xne, 1.0f, 0.0f);
  g_autofree gfloat *w = seeded_f16 (s2 ? 4 : 2, wn, (gfloat) (1.0 / sqrt (2880.0)));
  g_autoptr (SdclTensor) wt = sdcl_conv2d_weight_new (engine, SDCL_DTYPE_F16, w, 320, 320, 3, 3,
                                                      &error);
  g_autoptr (SdclTensor) b = seeded_tensor (s2 ? 5 : 3, bne, 0.1f, 0.0f);
  g_assert_no_error (error);
  /* direct, Winograd, and im2col with the tiled GEMM as GPUs run the
     direct algorithm */
  for (gint a = SDCL_CONV_DIRECT; a <= SDCL_CONV_WINOGRAD + 1; a++)
    {
      g_autoptr (SdclTensor) y = a > SDCL_CONV_WINOGRAD
        ? conv_as_gpu (x, wt, b, s2 ? 2 : 1, 1, 1, &error)
        : sdcl_conv2d_with (x, wt, b, s2 ? 2 : 1, 1, 1, (SdclConvAlgorithm) a, &error);
      g_assert_no_error (error);
      check_large (s2 ? "big_conv3x3_s2" : "big_conv3x3", y, TOL_REL, TOL_NMSE);
    }
}

/* Winograd against the direct kernel on the 3x3 layers of SD 1.x's UNet
 * (CFG batch of 2) and VAE decoder, plus odd sizes, asymmetric padding,
 * channel counts that are not multiples of 8 and an f16 input; both ways
 * of making U: inside the products where the device runs
 * gemm_wino_f16_local (CPUs; 6 positions per group, beyond 1365 input
 * channels in ranges of them, equal or not), and stored whole first (SDCL_WINOGRAD_FUSED=0 here), by
 * wino_weight as CPUs store it or by wino_weight4 as GPUs do
 * (SDCL_WINO_WEIGHT4=1); and the direct algorithm as GPUs run it, im2col
 * and the tiled GEMM (SDCL_CONV_GEMM=1). The direct kernel is itself
 * checked against PyTorch above. */
typedef struct
{
  const gchar *name;
  gint cin, cout, w, h, n, pad, pad_end;
  gboolean f16_input;
} WinogradCase;

static void
test_winograd (gconstpointer data)
{
  const WinogradCase *c = data;
  g_autoptr (GError) error = NULL;
  const gint64 xne[4] = { c->w, c->h, c->cin, c->n }, bne[4] = { c->cout, 1, 1, 1 };
  const gsize wn = (gsize) c->cout * c->cin * 9;
  g_autofree gfloat *xv = sdcl_test_seeded (11, (gsize) c->w * c->h * c->cin * c->n, 1.0f, 0.1f);
  g_autoptr (SdclTensor) x = sdcl_tensor_new (engine, c->f16_input ? SDCL_DTYPE_F16
                                                                   : SDCL_DTYPE_F32,
                                              4, xne, &error);
  g_assert_no_error (error);
  g_assert_true (sdcl_tensor_write_f32 (x, xv, &error));
  g_autofree gfloat *w = seeded_f16 (12, wn, (gfloat) (1.0 / sqrt (9.0 * c->cin)));
  g_autoptr (SdclTensor) wt = sdcl_conv2d_weight_new (engine, SDCL_DTYPE_F16, w, c->cout, c->cin,
                                                      3, 3, &error);
  g_autoptr (SdclTensor) b = seeded_tensor (13, bne, 0.1f, 0.0f);
  g_assert_no_error (error);
  g_autoptr (SdclTensor) direct = sdcl_conv2d_with (x, wt, b, 1, c->pad, c->pad_end,
                                                    SDCL_CONV_DIRECT, &error);
  g_assert_no_error (error);
  g_autofree gfloat *want = sdcl_tensor_read_f32 (direct, &error);
  g_assert_no_error (error);
  for (gint stored = 0; stored < 4; stored++)
    {
      /* the last pass is not Winograd: the direct algorithm as GPUs run
         it, where the channels allow */
      if (stored == 3 && c->cin % 4 != 0)
        break;
      if (stored == 1 || stored == 2)
        g_setenv ("SDCL_WINOGRAD_FUSED", "0", TRUE);
      if (stored == 2)
        g_setenv ("SDCL_WINO_WEIGHT4", "1", TRUE);
      g_autoptr (SdclTensor) wino = stored == 3
        ? conv_as_gpu (x, wt, b, 1, c->pad, c->pad_end, &error)
        : sdcl_conv2d_with (x, wt, b, 1, c->pad, c->pad_end, SDCL_CONV_WINOGRAD, &error);
      g_unsetenv ("SDCL_WINOGRAD_FUSED");
      g_unsetenv ("SDCL_WINO_WEIGHT4");
      g_assert_no_error (error);
      for (int i = 0; i < 4; i++)
        g_assert_cmpint (wino->ne[i], ==, direct->ne[i]);
      g_autofree gfloat *got = sdcl_tensor_read_f32 (wino, &error);
      g_assert_no_error (error);
      const gsize n = sdcl_tensor_numel (direct);
      gdouble max_ref = 0, max_err = 0;
      for (gsize i = 0; i < n; i++)
        {
          max_ref = MAX (max_ref, fabs (want[i]));
          max_err = MAX (max_err, fabs (got[i] - want[i]));
        }
      g_autofree gchar *name = g_strdup_printf ("%s, U %s", c->name,
                                                stored == 3 ? "not used: im2col and GEMM"
                                                : stored == 2 ? "stored by wino_weight4"
                                                : stored ? "stored" : "in the products");
      g_test_message ("%s: max error %.2e of the largest value", name, max_err / max_ref);
      sdcl_test_assert_close (name, got, want, n, TOL_REL, TOL_NMSE);
    }
}

/* conv(x) + bias + add formed in the output's pass (sdcl_conv2d_add,
 * sdcl_conv2d_add_into) against the plain convolution plus add here, for
 * each way the layer can run: Winograd (fused U and stored), the direct
 * kernel (whole and in blocks of input channels, with its weights widened
 * in local memory or not), 1x1 as a product, stride 2, and the direct
 * algorithm as GPUs run it; add a residual or a value per channel and
 * image, or the output itself (in place). */
typedef struct
{
  const gchar *name;
  gint cin, cout, w, h, n, ks, stride;
} ConvAddCase;

static void
test_conv_add (gconstpointer data)
{
  const ConvAddCase *c = data;
  g_autoptr (GError) error = NULL;
  const gint pad = c->ks / 2;
  const gint64 xne[4] = { c->w, c->h, c->cin, c->n }, bne[4] = { c->cout, 1, 1, 1 };
  const gint64 wo = (c->w + 2 * pad - c->ks) / c->stride + 1;
  const gint64 ho = (c->h + 2 * pad - c->ks) / c->stride + 1;
  const gint64 rne[4] = { wo, ho, c->cout, c->n }, tne[4] = { 1, 1, c->cout, c->n };
  const gsize wn = (gsize) c->cout * c->cin * c->ks * c->ks;
  g_autoptr (SdclTensor) x = seeded_tensor (21, xne, 1.0f, 0.1f);
  g_autofree gfloat *w = seeded_f16 (22, wn, (gfloat) (1.0 / sqrt ((double) wn / c->cout)));
  g_autoptr (SdclTensor) wt = sdcl_conv2d_weight_new (engine, SDCL_DTYPE_F16, w, c->cout, c->cin,
                                                      c->ks, c->ks, &error);
  g_assert_no_error (error);
  g_autoptr (SdclTensor) b = seeded_tensor (23, bne, 0.1f, 0.0f);
  g_autoptr (SdclTensor) res = seeded_tensor (24, rne, 1.0f, 0.0f);
  g_autoptr (SdclTensor) temb = seeded_tensor (25, tne, 1.0f, 0.0f);
  g_autoptr (SdclTensor) plain = sdcl_conv2d (x, wt, b, c->stride, pad, &error);
  g_assert_no_error (error);
  g_autofree gfloat *yv = sdcl_tensor_read_f32 (plain, &error);
  g_autofree gfloat *rv = sdcl_tensor_read_f32 (res, &error);
  g_autofree gfloat *tv = sdcl_tensor_read_f32 (temb, &error);
  g_assert_no_error (error);
  const gsize n = sdcl_tensor_numel (plain), plane = wo * ho;
  g_autofree gfloat *want_r = g_new (gfloat, n);
  g_autofree gfloat *want_t = g_new (gfloat, n);
  for (gsize i = 0; i < n; i++)
    {
      want_r[i] = yv[i] + rv[i];
      want_t[i] = yv[i] + tv[i / plane];
    }
  /* 0 direct, 1 Winograd, 2 Winograd with U stored, 3 direct without
     local weights, 4 the direct algorithm as GPUs run it */
  for (gint way = 0; way < 5; way++)
    {
      const SdclConvAlgorithm alg = way == 1 || way == 2 ? SDCL_CONV_WINOGRAD : SDCL_CONV_DIRECT;
      if (way == 2)
        g_setenv ("SDCL_WINOGRAD_FUSED", "0", TRUE);
      if (way == 3)
        g_setenv ("SDCL_CONV_LOCAL", "0", TRUE);
      if (way == 4)
        {
          g_setenv ("SDCL_CONV_GEMM", "1", TRUE);
          g_setenv ("SDCL_GEMM_TILED", "1", TRUE);
        }
      for (gint mode = 0; mode < 3; mode++)
        {
          g_autoptr (SdclTensor) into = mode == 2 ? sdcl_contiguous (res, &error) : NULL;
          g_assert_no_error (error);
          g_autoptr (SdclTensor) y = NULL;
          if (mode == 2)
            {
              g_assert_true (sdcl_conv2d_add_into (x, wt, b, c->stride, pad, alg, into, &error));
              y = sdcl_tensor_view (into, into->ne, into->nb, 0, &error);
            }
          else
            y = sdcl_conv2d_add (x, wt, b, c->stride, pad, alg, mode ? temb : res, &error);
          g_assert_no_error (error);
          for (int i = 0; i < 4; i++)
            g_assert_cmpint (y->ne[i], ==, rne[i]);
          g_autofree gfloat *got = sdcl_tensor_read_f32 (y, &error);
          g_assert_no_error (error);
          g_autofree gchar *name = g_strdup_printf ("%s, way %d, %s", c->name, way,
                                                    mode == 1 ? "per channel and image"
                                                    : mode ? "into the residual" : "residual");
          sdcl_test_assert_close (name, got, mode == 1 ? want_t : want_r, n, TOL_REL, TOL_NMSE);
        }
      g_unsetenv ("SDCL_WINOGRAD_FUSED");
      g_unsetenv ("SDCL_CONV_LOCAL");
      g_unsetenv ("SDCL_CONV_GEMM");
      g_unsetenv ("SDCL_GEMM_TILED");
    }
  /* what does not fit is refused, and in place needs the whole output */
  const gint64 bad_ne[4] = { wo, ho, c->cout + 1, c->n };
  g_autoptr (SdclTensor) bad = seeded_tensor (26, bad_ne, 1.0f, 0.0f);
  g_autoptr (SdclTensor) none = sdcl_conv2d_add (x, wt, b, c->stride, pad, SDCL_CONV_AUTO, bad,
                                                 &error);
  g_assert_null (none);
  g_assert_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE);
  g_clear_error (&error);
  g_autoptr (SdclTensor) t2 = sdcl_contiguous (temb, &error);
  g_assert_false (sdcl_conv2d_add_into (x, wt, b, c->stride, pad, SDCL_CONV_AUTO, t2, &error));
  g_assert_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE);
}

static const ConvAddCase conv_add_cases[] = {
  { "3x3 64->48 at 13x11 x2", 64, 48, 13, 11, 2, 3, 1 },
  { "3x3 1280->40 at 5x4 x2 (input channels in blocks)", 1280, 40, 5, 4, 2, 3, 1 },
  { "3x3 s2 32->40 at 9x8", 32, 40, 9, 8, 1, 3, 2 },
  { "1x1 64->40 at 7x6 x2", 64, 40, 7, 6, 2, 1, 1 },
};

static void
test_large_gemm (void)
{
  g_autoptr (GError) error = NULL;
  const gint64 xne[4] = { 320, 4096, 1, 1 }, bne[4] = { 1280, 1, 1, 1 };
  g_autoptr (SdclTensor) x = seeded_tensor (6, xne, 1.0f, 0.0f);
  g_autofree gfloat *w = seeded_f16 (7, 1280 * 320, (gfloat) (1.0 / sqrt (320.0)));
  g_autoptr (SdclTensor) wt = sdcl_linear_weight_new (engine, SDCL_DTYPE_F16, w, 1280, 320, &error);
  g_autoptr (SdclTensor) b = seeded_tensor (8, bne, 0.1f, 0.0f);
  g_assert_no_error (error);
  g_autoptr (SdclTensor) y = sdcl_linear (x, wt, b, &error);
  g_assert_no_error (error);
  check_large ("big_gemm", y, TOL_REL, TOL_NMSE);
}

/* The tiled GEMM that GPUs run (gemm_tiled_*: 128x128 blocks through
 * local memory; gemm_tiled32_* with 32-row blocks up to 64 rows), forced
 * here with SDCL_GEMM_TILED=1 so every device checks it: linear layers
 * with f16 and f32 weights (B read as padded rows), with bias,
 * accumulating into C, and batched matmul (B packed in panels, both
 * orientations), on shapes that leave partial blocks in M, N and K (and
 * one that fills them exactly), against double products on the host;
 * each once as the device would split K and once split in 4 where 4
 * divides K (SDCL_GEMM_SPLIT; partial sums added by gemm_splitk_sum). */
static void
test_matmul_tiled (void)
{
  static const gint64 shapes[][4] = {   /* M, K, N, batches */
    { 1, 1, 1, 1 }, { 13, 53, 29, 1 }, { 77, 768, 300, 1 }, { 130, 17, 130, 2 },
    { 256, 320, 256, 1 }, { 129, 40, 257, 3 }, { 300, 200, 17, 2 }, { 64, 1280, 130, 1 },
    { 33, 96, 140, 3 },
  };
  g_setenv ("SDCL_GEMM_TILED", "1", TRUE);
  for (guint r = 0; r < 2 * G_N_ELEMENTS (shapes); r++)
    {
      const guint s = r / 2;
      if (r % 2)
        g_setenv ("SDCL_GEMM_SPLIT", "4", TRUE);
      else
        g_unsetenv ("SDCL_GEMM_SPLIT");
      const gint64 M = shapes[s][0], K = shapes[s][1], N = shapes[s][2], B = shapes[s][3];
      g_autoptr (GError) error = NULL;
      g_autofree gfloat *xv = sdcl_test_seeded (60 + s, K * M * B, 1.0f, 0.0f);
      g_autofree gfloat *w = seeded_f16 (70 + s, N * K * B, (gfloat) (1.0 / sqrt ((double) K)));
      g_autofree gfloat *bv = sdcl_test_seeded (80 + s, N, 0.1f, 0.0f);
      g_autofree gfloat *cv = sdcl_test_seeded (90 + s, N * M, 1.0f, 0.0f);
      const gint64 xne[4] = { K, M, B, 1 }, bne[4] = { N, 1, 1, 1 }, cne[4] = { N, M, 1, 1 };
      g_autoptr (SdclTensor) x = upload (xv, xne, SDCL_DTYPE_F32);
      g_autoptr (SdclTensor) b = upload (bv, bne, SDCL_DTYPE_F32);
      g_autofree gfloat *want = g_new (gfloat, M * N * B);
      g_autofree gchar *name = NULL;

      /* linear: batch 0 of x times the first weight, + bias (+ C) */
      for (gint mode = 0; mode < 3; mode++)
        {
          const SdclDtype dt = mode == 1 ? SDCL_DTYPE_F32 : SDCL_DTYPE_F16;
          g_autoptr (SdclTensor) wt = sdcl_linear_weight_new (engine, dt, w, N, K, &error);
          g_assert_no_error (error);
          const gint64 x1ne[4] = { K, M, 1, 1 };
          g_autoptr (SdclTensor) x1 = upload (xv, x1ne, SDCL_DTYPE_F32);
          g_autoptr (SdclTensor) y = NULL;
          if (mode == 2)
            {
              y = upload (cv, cne, SDCL_DTYPE_F32);
              g_assert_true (sdcl_linear_accumulate (x1, wt, b, y, &error));
            }
          else
            y = sdcl_linear (x1, wt, b, &error);
          g_assert_no_error (error);
          for (gint64 m = 0; m < M; m++)
            for (gint64 n = 0; n < N; n++)
              {
                gdouble acc = bv[n] + (mode == 2 ? cv[m * N + n] : 0.0);
                for (gint64 k = 0; k < K; k++)
                  acc += (gdouble) xv[m * K + k] * w[n * K + k];
                want[m * N + n] = (gfloat) acc;
              }
          g_autofree gfloat *got = sdcl_tensor_read_f32 (y, &error);
          g_assert_no_error (error);
          g_free (name);
          name = g_strdup_printf ("tiled linear %s%s %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                                  " · %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT,
                                  mode == 1 ? "f32" : "f16", mode == 2 ? " accumulate" : "",
                                  M, K, K, N);
          sdcl_test_assert_close (name, got, want, M * N, TOL_REL, TOL_NMSE);
        }

      /* batched matmul, B per batch: [K][N] and transposed ([N][K]) */
      for (gint tr = 0; tr < 2; tr++)
        {
          const gint64 wne[4] = { tr ? K : N, tr ? N : K, B, 1 };
          g_autoptr (SdclTensor) bt = upload (w, wne, SDCL_DTYPE_F32);
          g_autoptr (SdclTensor) y = sdcl_matmul (x, bt, tr, &error);
          g_assert_no_error (error);
          for (gint64 i = 0; i < B; i++)
            for (gint64 m = 0; m < M; m++)
              for (gint64 n = 0; n < N; n++)
                {
                  gdouble acc = 0.0;
                  for (gint64 k = 0; k < K; k++)
                    acc += (gdouble) xv[(i * M + m) * K + k]
                           * w[i * N * K + (tr ? n * K + k : k * N + n)];
                  want[(i * M + m) * N + n] = (gfloat) acc;
                }
          g_autofree gfloat *got = sdcl_tensor_read_f32 (y, &error);
          g_assert_no_error (error);
          g_free (name);
          name = g_strdup_printf ("tiled matmul%s %" G_GINT64_FORMAT " x %" G_GINT64_FORMAT "x%"
                                  G_GINT64_FORMAT " · %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT,
                                  tr ? " (b transposed)" : "", B, M, K, K, N);
          sdcl_test_assert_close (name, got, want, M * N * B, TOL_REL, TOL_NMSE);
        }
    }
  g_unsetenv ("SDCL_GEMM_SPLIT");
  g_unsetenv ("SDCL_GEMM_TILED");
}

/* Seeded inputs of a linear layer, x [K, M] · w [N, K] + b [N]: x from
 * seed, w (values exact in f16, scaled by w_gain / sqrt(K)) from seed + 10,
 * b from seed + 20; the host values and the tensors (w stored as wtype). */
typedef struct
{
  gfloat     *xv, *w, *bv;
  SdclTensor *x, *wt, *b;
} LinearInputs;

static void
linear_inputs_init (LinearInputs *li, guint32 seed, gint64 M, gint64 K, gint64 N, gdouble w_gain,
                    gfloat b_scale, SdclDtype wtype)
{
  g_autoptr (GError) error = NULL;
  const gint64 xne[4] = { K, M, 1, 1 }, bne[4] = { N, 1, 1, 1 };
  li->xv = sdcl_test_seeded (seed, K * M, 1.0f, 0.0f);
  li->w = seeded_f16 (seed + 10, N * K, (gfloat) (w_gain / sqrt ((double) K)));
  li->bv = sdcl_test_seeded (seed + 20, N, b_scale, 0.0f);
  li->x = upload (li->xv, xne, SDCL_DTYPE_F32);
  li->b = upload (li->bv, bne, SDCL_DTYPE_F32);
  li->wt = sdcl_linear_weight_new (engine, wtype, li->w, N, K, &error);
  g_assert_no_error (error);
}

static void
linear_inputs_clear (LinearInputs *li)
{
  g_free (li->xv);
  g_free (li->w);
  g_free (li->bv);
  sdcl_tensor_free (li->x);
  sdcl_tensor_free (li->wt);
  sdcl_tensor_free (li->b);
}

/* Row m, output feature n of x·wᵀ, plus b[n] with `bias`, in double. */
static gdouble
linear_ref (const LinearInputs *li, gint64 K, gint64 m, gint64 n, gboolean bias)
{
  gdouble acc = bias ? li->bv[n] : 0.0;
  for (gint64 k = 0; k < K; k++)
    acc += (gdouble) li->xv[m * K + k] * li->w[n * K + k];
  return acc;
}

/* f16 weights times few rows (13 to 95: the text encoder's 77 tokens; 128
 * to 2048: the UNet's small levels), the product CPUs run with the weight
 * widened in local memory per group (gemm_f16_local, groups of up to 32
 * row tiles): against the product in double on the host, and equal to
 * what SDCL_GEMM_LOCAL=0 runs, the kernel that converts in its K loop
 * (under 96 rows) or the one that reads an f32 copy in panels, which do
 * the same arithmetic in the same order. A K too long for a group's
 * columns to fit in local memory whole (4500 with 64-column tiles) runs as
 * ranges of K added into the output: its sums are grouped differently, so
 * only the product in double checks it. */
static void
test_few_rows_f16 (void)
{
  static const gint64 shapes[][4] = {   /* M, K, N, K may be cut */
    { 13, 53, 29, 0 }, { 18, 768, 100, 0 }, { 77, 768, 3072, 0 }, { 95, 131, 47, 0 },
    { 40, 1, 16, 0 }, { 128, 640, 200, 0 }, { 197, 61, 33, 0 }, { 1024, 96, 48, 0 },
    { 2048, 40, 20, 0 }, { 256, 4500, 100, 1 },
  };
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    {
      const gint64 M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
      g_autoptr (GError) error = NULL;
      LinearInputs li;
      linear_inputs_init (&li, 30 + s, M, K, N, 1.0, 0.1f, SDCL_DTYPE_F16);
      g_autoptr (SdclTensor) y = sdcl_linear (li.x, li.wt, li.b, &error);
      g_assert_no_error (error);
      g_setenv ("SDCL_GEMM_LOCAL", "0", TRUE);
      g_autoptr (SdclTensor) y0 = sdcl_linear (li.x, li.wt, li.b, &error);
      g_unsetenv ("SDCL_GEMM_LOCAL");
      g_assert_no_error (error);
      g_autofree gfloat *got = sdcl_tensor_read_f32 (y, &error);
      g_autofree gfloat *got0 = sdcl_tensor_read_f32 (y0, &error);
      g_assert_no_error (error);
      g_autofree gfloat *want = g_new (gfloat, M * N);
      for (gint64 m = 0; m < M; m++)
        for (gint64 n = 0; n < N; n++)
          want[m * N + n] = (gfloat) linear_ref (&li, K, m, n, TRUE);
      g_autofree gchar *name = g_strdup_printf ("%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                                                " · %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT,
                                                M, K, K, N);
      sdcl_test_assert_close (name, got, want, M * N, TOL_REL, TOL_NMSE);
      if (!shapes[s][3])
        g_assert_cmpmem (got, M * N * sizeof (gfloat), got0, M * N * sizeof (gfloat));
      linear_inputs_clear (&li);
    }
}

/* y += x·Wᵀ + b in the GEMM's epilogue (the UNet's residual stream):
 * against y0 + the product in double, for f16 and f32 weights, row counts
 * on both sides of PACK_MIN_ROWS (the unpacked and packed paths, and the
 * local-widening kernel), N off the tile width, a batch dimension; and a
 * sum whose shape or layout does not fit is refused, unchanged. */
/* GEGLU formed in the product's output (sdcl_linear_geglu) against the
 * product then GEGLU computed here in double precision: rows below the
 * packing threshold, rows widened per group, packed f32 panels; F a
 * multiple of 32, of 16 (a tile half past F), not of 16 (not fused), no
 * bias; f16 and f32 weights. */
static void
test_linear_geglu (void)
{
  static const gint64 shapes[][4] = {   /* M, K, F, bias */
    { 7, 64, 64, 1 }, { 77, 96, 48, 1 }, { 300, 64, 80, 0 }, { 2100, 40, 96, 1 },
    { 50, 32, 20, 1 },
  };
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    for (gint f16 = 0; f16 < 2; f16++)
      {
        const gint64 M = shapes[s][0], K = shapes[s][1], F = shapes[s][2], N = 2 * F;
        const gboolean bias = shapes[s][3];
        g_autoptr (GError) error = NULL;
        LinearInputs li;
        linear_inputs_init (&li, 110 + s, M, K, N, 1.5, 0.3f,
                            f16 ? SDCL_DTYPE_F16 : SDCL_DTYPE_F32);
        g_autoptr (SdclTensor) y = sdcl_linear_geglu (li.x, li.wt, bias ? li.b : NULL, &error);
        g_assert_no_error (error);
        g_assert_cmpint (y->ne[0], ==, F);
        g_assert_cmpint (y->ne[1], ==, M);
        g_autofree gfloat *got = sdcl_tensor_read_f32 (y, &error);
        g_assert_no_error (error);
        g_autofree gfloat *want = g_new (gfloat, M * F);
        for (gint64 m = 0; m < M; m++)
          for (gint64 n = 0; n < F; n++)
            {
              const gdouble h = linear_ref (&li, K, m, n, bias);
              const gdouble g = linear_ref (&li, K, m, F + n, bias);
              want[m * F + n] = (gfloat) (h * 0.5 * g * (1.0 + erf (g / sqrt (2.0))));
            }
        g_autofree gchar *name = g_strdup_printf ("geglu (%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                                                  " · %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                                                  ", %s%s)", M, K, K, N, f16 ? "f16" : "f32",
                                                  bias ? "" : ", no bias");
        sdcl_test_assert_close (name, got, want, M * F, TOL_REL, TOL_NMSE);
        linear_inputs_clear (&li);
      }
}

static void
test_linear_accumulate (void)
{
  static const gint64 shapes[][4] = {   /* M, K, N, batch */
    { 5, 40, 33, 1 }, { 77, 128, 100, 1 }, { 300, 96, 70, 2 }, { 1024, 64, 320, 1 },
    { 256, 4500, 100, 2 },   /* f16: K in ranges, each added (see test_few_rows_f16) */
  };
  for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
    for (gint f16 = 0; f16 < 2; f16++)
      {
        const gint64 M = shapes[s][0], K = shapes[s][1], N = shapes[s][2], B = shapes[s][3];
        g_autoptr (GError) error = NULL;
        const gint64 xne[4] = { K, M / B, B, 1 }, yne[4] = { N, M / B, B, 1 };
        const gint64 bne[4] = { N, 1, 1, 1 };
        g_autofree gfloat *xv = sdcl_test_seeded (70 + s, K * M, 1.0f, 0.0f);
        g_autofree gfloat *w = seeded_f16 (80 + s, N * K, (gfloat) (1.0 / sqrt ((double) K)));
        g_autofree gfloat *bv = sdcl_test_seeded (90 + s, N, 0.1f, 0.0f);
        g_autofree gfloat *y0 = sdcl_test_seeded (100 + s, M * N, 2.0f, 0.5f);
        g_autoptr (SdclTensor) x = upload (xv, xne, SDCL_DTYPE_F32);
        g_autoptr (SdclTensor) b = upload (bv, bne, SDCL_DTYPE_F32);
        g_autoptr (SdclTensor) y = upload (y0, yne, SDCL_DTYPE_F32);
        g_autoptr (SdclTensor) wt = sdcl_linear_weight_new (engine, f16 ? SDCL_DTYPE_F16
                                                                     : SDCL_DTYPE_F32,
                                                            w, N, K, &error);
        g_assert_no_error (error);
        g_assert_true (sdcl_linear_accumulate (x, wt, b, y, &error));
        g_assert_no_error (error);
        g_autofree gfloat *got = sdcl_tensor_read_f32 (y, &error);
        g_assert_no_error (error);
        g_autofree gfloat *want = g_new (gfloat, M * N);
        for (gint64 m = 0; m < M; m++)
          for (gint64 n = 0; n < N; n++)
            {
              gdouble acc = (gdouble) y0[m * N + n] + bv[n];
              for (gint64 k = 0; k < K; k++)
                acc += (gdouble) xv[m * K + k] * w[n * K + k];
              want[m * N + n] = (gfloat) acc;
            }
        g_autofree gchar *name = g_strdup_printf ("y += %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                                                  " · %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                                                  " (%s)", M, K, K, N, f16 ? "f16" : "f32");
        sdcl_test_assert_close (name, got, want, M * N, TOL_REL, TOL_NMSE);

        /* a sum of another shape, or a strided view, is refused and left as it was */
        const gint64 bad_ne[4] = { N, M / B, 1, 1 };
        g_autoptr (SdclTensor) half = sdcl_tensor_view (y, bad_ne, y->nb, 0, &error);
        g_assert_no_error (error);
        if (B > 1)
          {
            g_assert_false (sdcl_linear_accumulate (x, wt, b, half, &error));
            g_assert_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE);
            g_clear_error (&error);
          }
        const gint64 narrow_ne[4] = { N - 1, M / B, B, 1 };
        g_autoptr (SdclTensor) narrow = sdcl_tensor_view (y, narrow_ne, y->nb, 0, &error);
        g_assert_no_error (error);
        g_assert_false (sdcl_linear_accumulate (x, wt, b, narrow, &error));
        g_assert_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE);
        g_clear_error (&error);
        g_autofree gfloat *after = sdcl_tensor_read_f32 (y, &error);
        g_assert_no_error (error);
        g_assert_cmpmem (after, M * N * sizeof (gfloat), got, M * N * sizeof (gfloat));
      }
}

/* Direct convolutions with f16 weights and up to CONV_LOCAL_MAX_ROWS
 * output pixels widen each group's weight columns in local memory on
 * CPUs (conv*_f16_local): the same values and the same sums in the same
 * order as the kernels that read the weight as stored or widened per call
 * (SDCL_CONV_LOCAL=0), so bit for bit the same output. Shapes with two
 * channel blocks, a partial last column tile, odd sizes, and 600 output
 * pixels (100 row tiles: groups of 32, the last one partial). */
static void
test_conv_local_weights (void)
{
  static const gint cases[][7] = {   /* Cin, Cout, W, H, N, k, stride */
    { 100, 70, 9, 7, 2, 3, 1 }, { 64, 40, 20, 20, 1, 3, 2 }, { 1000, 33, 8, 8, 2, 1, 1 },
    { 300, 16, 5, 13, 1, 3, 1 }, { 48, 40, 30, 20, 1, 3, 1 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const gint *c = cases[i];
      g_autoptr (GError) error = NULL;
      const gint64 xne[4] = { c[2], c[3], c[0], c[4] }, bne[4] = { c[1], 1, 1, 1 };
      g_autoptr (SdclTensor) x = seeded_tensor (60 + i, xne, 1.0f, 0.0f);
      g_autoptr (SdclTensor) b = seeded_tensor (70 + i, bne, 0.1f, 0.0f);
      const gsize wn = (gsize) c[1] * c[0] * c[5] * c[5];
      g_autofree gfloat *w = seeded_f16 (80 + i, wn, (gfloat) (1.0 / sqrt ((gdouble) wn / c[1])));
      g_autoptr (SdclTensor) wt = sdcl_conv2d_weight_new (engine, SDCL_DTYPE_F16, w, c[1], c[0],
                                                          c[5], c[5], &error);
      g_assert_no_error (error);
      const gint pad = c[5] == 3 ? 1 : 0;
      g_autoptr (SdclTensor) y = sdcl_conv2d_with (x, wt, b, c[6], pad, pad, SDCL_CONV_DIRECT,
                                                   &error);
      g_assert_no_error (error);
      g_setenv ("SDCL_CONV_LOCAL", "0", TRUE);
      g_autoptr (SdclTensor) y0 = sdcl_conv2d_with (x, wt, b, c[6], pad, pad, SDCL_CONV_DIRECT,
                                                    &error);
      g_unsetenv ("SDCL_CONV_LOCAL");
      g_assert_no_error (error);
      g_autofree gfloat *got = sdcl_tensor_read_f32 (y, &error);
      g_autofree gfloat *want = sdcl_tensor_read_f32 (y0, &error);
      g_assert_no_error (error);
      const gsize n = sdcl_tensor_numel (y);
      g_assert_cmpmem (got, n * sizeof (gfloat), want, n * sizeof (gfloat));
    }
}

static void
test_large_attention (gconstpointer data)
{
  const gboolean cross = GPOINTER_TO_INT (data);
  g_autoptr (GError) error = NULL;
  const gint64 qne[4] = { 320, 4096, 1, 1 }, kne[4] = { 320, cross ? 77 : 4096, 1, 1 };
  g_autoptr (SdclTensor) q = seeded_tensor (cross ? 12 : 9, qne, 3.0f, 0.0f);
  g_autoptr (SdclTensor) k = seeded_tensor (cross ? 13 : 10, kne, 3.0f, 0.0f);
  g_autoptr (SdclTensor) v = seeded_tensor (cross ? 14 : 11, kne, 1.0f, 0.0f);
  for (guint i = 0; i < G_N_ELEMENTS (attention_paths); i++)
    {
      g_setenv ("SDCL_ATTENTION", attention_paths[i], TRUE);
      g_assert_true (sdcl_engine_finish (engine, &error));
      sdcl_engine_trim (engine);          /* so the output is a new allocation */
      sdcl_engine_reset_peak (engine);
      const guint64 before = sdcl_engine_memory_in_use (engine);
      g_autoptr (SdclTensor) y = sdcl_attention (q, k, v, 8, FALSE, &error);
      g_assert_no_error (error);
      /* everything attention allocated beyond its output: never the whole
       * score matrix (4096·4096·8·4 bytes = 512 MiB) */
      const guint64 extra = sdcl_engine_memory_peak (engine) - before - sdcl_tensor_bytes (y);
      g_test_message ("attention (%s) scratch: %" G_GUINT64_FORMAT " bytes", attention_paths[i],
                      extra);
      g_assert_cmpuint (extra, <, 64u << 20);
      check_large (cross ? "big_attn_cross" : "big_attn_self", y, TOL_REL, TOL_NMSE);
    }
  g_unsetenv ("SDCL_ATTENTION");
}

static void
test_large_group_norm (void)
{
  g_autoptr (GError) error = NULL;
  const gint64 xne[4] = { 8, 8, 1280, 2 }, cne[4] = { 1280, 1, 1, 1 };
  g_autoptr (SdclTensor) x = seeded_tensor (15, xne, 2.0f, 0.5f);
  g_autoptr (SdclTensor) g = seeded_tensor (16, cne, 0.1f, 1.0f);
  g_autoptr (SdclTensor) b = seeded_tensor (17, cne, 0.1f, 0.0f);
  g_autoptr (SdclTensor) y = sdcl_group_norm (x, g, b, 32, 1e-5f, FALSE, &error);
  g_assert_no_error (error);
  check_large ("big_groupnorm", y, TOL_REL, TOL_NMSE);
}

/* ---- bad arguments ------------------------------------------------------------------ */

static void
test_shape_errors (void)
{
  g_autoptr (GError) error = NULL;
  const gint64 a_ne[4] = { 5, 3, 1, 1 }, b_ne[4] = { 4, 6, 1, 1 }, img[4] = { 4, 4, 30, 1 };
  g_autofree gfloat *zeros = g_new0 (gfloat, 4 * 4 * 30);
  g_autoptr (SdclTensor) a = upload (zeros, a_ne, SDCL_DTYPE_F32);
  g_autoptr (SdclTensor) b = upload (zeros, b_ne, SDCL_DTYPE_F32);
  g_autoptr (SdclTensor) x = upload (zeros, img, SDCL_DTYPE_F32);

  g_assert_null (sdcl_matmul (a, b, FALSE, &error));               /* K 5 vs 6 */
  g_assert_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE);
  g_clear_error (&error);
  g_assert_null (sdcl_group_norm (x, NULL, NULL, 32, 1e-5f, FALSE, &error));  /* 30 % 32 */
  g_assert_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE);
  g_assert_nonnull (strstr (error->message, "multiple of the groups"));
  g_clear_error (&error);
  g_assert_null (sdcl_attention (a, a, a, 1, FALSE, &error));       /* head dim 5 */
  g_assert_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE);
  g_clear_error (&error);
  g_assert_null (sdcl_binary (a, b, SDCL_BINARY_ADD, &error));
  g_assert_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE);
  g_clear_error (&error);
  g_assert_null (sdcl_concat (a, x, 1, &error));
  g_assert_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE);
  g_clear_error (&error);
  const gint64 far[4] = { 5, 4, 1, 1 };                             /* one row too many */
  g_assert_null (sdcl_tensor_view (a, far, NULL, 0, &error));
  g_assert_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE);
}

/* ---- weights packed from a file's elements ------------------------------------ */

typedef struct
{
  const gchar   *name;
  SdclWeightType type;
  SdclDtype      storage;
  gint64         parts, rows_each, in, taps;   /* taps 1: linear; 9: a 3x3 conv */
} PackCase;

static const PackCase pack_cases[] = {
  { "linear-f16-parts", SDCL_WEIGHT_F16, SDCL_DTYPE_F16, 3, 77, 131, 1 },
  { "linear-bf16", SDCL_WEIGHT_BF16, SDCL_DTYPE_F16, 1, 45, 64, 1 },
  { "linear-f32-into-f32", SDCL_WEIGHT_F32, SDCL_DTYPE_F32, 2, 19, 300, 1 },
  { "linear-f16-threaded", SDCL_WEIGHT_F16, SDCL_DTYPE_F16, 1, 1283, 1031, 1 },
  { "conv-f16", SDCL_WEIGHT_F16, SDCL_DTYPE_F16, 1, 70, 37, 9 },
  { "conv-f32-into-f16", SDCL_WEIGHT_F32, SDCL_DTYPE_F16, 1, 33, 300, 9 },
  { "conv-bf16-into-f32", SDCL_WEIGHT_BF16, SDCL_DTYPE_F32, 1, 17, 11, 9 },
  { "conv-f16-threaded", SDCL_WEIGHT_F16, SDCL_DTYPE_F16, 1, 321, 400, 9 },
};

/* Every element of the packed buffer, padding included, against the
 * layout ops-gemm.c documents: element (n, k) at k·ldw + n, K over (tap,
 * input channel), the file's value converted to the storage dtype. */
static void
test_pack_from_file (gconstpointer data)
{
  const PackCase *c = data;
  g_autoptr (GError) error = NULL;
  const gint64 n_out = c->parts * c->rows_each, row = c->in * c->taps;
  const gsize tsize = c->type == SDCL_WEIGHT_F32 ? 4 : 2;
  g_autofree guint8 *file = g_malloc (n_out * row * tsize);
  g_autofree gfloat *value = g_new (gfloat, n_out * row);     /* what the file means */
  guint32 state = 12345;
  for (gint64 i = 0; i < n_out * row; i++)
    {
      state = state * 1664525u + 1013904223u;
      const gfloat v = ((gint32) (state >> 8) - (1 << 23)) / (gfloat) (1 << 21);
      if (c->type == SDCL_WEIGHT_F32)
        memcpy (file + 4 * i, &v, 4), value[i] = v;
      else
        {
          guint32 bits;
          memcpy (&bits, &v, 4);
          const guint16 h = c->type == SDCL_WEIGHT_F16 ? sdcl_f32_to_f16 (v) : bits >> 16;
          memcpy (file + 2 * i, &h, 2);
          value[i] = c->type == SDCL_WEIGHT_F16 ? sdcl_f16_to_f32 (h) : sdcl_bf16_to_f32 (h);
        }
    }
  SdclWeightPart parts[4];
  for (gint64 p = 0; p < c->parts; p++)
    parts[p] = (SdclWeightPart) { file + p * c->rows_each * row * tsize, c->type, c->rows_each };
  g_autoptr (SdclTensor) w = c->taps == 1
    ? sdcl_linear_weight_new_parts (engine, c->storage, parts, c->parts, c->in, &error)
    : sdcl_conv2d_weight_new_parts (engine, c->storage, parts, n_out, c->in, 3, 3, &error);
  g_assert_no_error (error);
  g_assert_cmpint (w->ne[0], ==, n_out);

  const gsize esize = sdcl_dtype_size (c->storage);
  const gint64 ldw = (c->taps == 1 ? w->nb[1] : w->nb[3]) / esize;
  g_assert_cmpint (ldw % 16, ==, 0);
  g_assert_cmpint (ldw, >=, n_out);
  g_assert_cmpint (ldw, <, n_out + 16);
  const gint64 dense_ne[4] = { ldw * row, 1, 1, 1 };
  g_autoptr (SdclTensor) dense = sdcl_tensor_view (w, dense_ne, NULL, 0, &error);
  g_assert_no_error (error);
  g_autofree guint8 *got = g_malloc (ldw * row * esize);
  g_assert_true (sdcl_tensor_read (dense, got, &error));
  g_assert_no_error (error);
  gint64 bad = 0;
  for (gint64 k = 0; k < row; k++)
    for (gint64 n = 0; n < ldw; n++)
      {
        /* k = tap · in + i; the file holds [n][i][tap] */
        const gint64 tap = k / c->in, i = k % c->in;
        const gfloat want = n < n_out ? value[n * row + i * c->taps + tap] : 0.0f;
        guint32 expect, have = 0;
        if (esize == 2)
          expect = sdcl_f32_to_f16 (want);
        else
          memcpy (&expect, &want, 4);
        memcpy (&have, got + (k * ldw + n) * esize, esize);
        if (have != expect && bad++ < 5)
          g_test_message ("%s: element (n %" G_GINT64_FORMAT ", k %" G_GINT64_FORMAT
                          ") is 0x%x, want 0x%x", c->name, n, k, have, expect);
      }
  if (bad)
    sdcl_test_fail ("%s: %" G_GINT64_FORMAT " packed elements differ from the file's", c->name,
                    bad);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_autoptr (GError) error = NULL;
  g_autofree gchar *small_path = sdcl_test_fixture ("ops.safetensors");
  g_autofree gchar *large_path = sdcl_test_fixture ("ops-large.safetensors");
  engine = sdcl_engine_new (NULL, &error);
  g_assert_no_error (error);
  small = sdcl_safetensors_open (small_path, &error);
  g_assert_no_error (error);
  large = sdcl_safetensors_open (large_path, &error);
  g_assert_no_error (error);

  g_test_add_func ("/ops/seeded-generator", test_seeded_generator);
  g_test_add_func ("/ops/f16-conversion", test_f16_conversion);
  g_test_add_func ("/ops/matmul/f32", test_matmul_f32);
  g_test_add_func ("/ops/matmul/batched", test_matmul_batched);
  g_test_add_data_func ("/ops/matmul/linear-f16", "linear_f16", run_linear);
  g_test_add_func ("/ops/matmul/few-rows-f16", test_few_rows_f16);
  g_test_add_func ("/ops/matmul/tiled", test_matmul_tiled);
  g_test_add_func ("/ops/linear/accumulate", test_linear_accumulate);
  g_test_add_func ("/ops/linear/geglu", test_linear_geglu);
  g_test_add_func ("/ops/conv/f16-local-weights", test_conv_local_weights);
  g_test_add_data_func ("/ops/matmul/linear-f16-bias", "linear_f16_bias", run_linear);
  g_test_add_data_func ("/ops/matmul/linear-f32-bias", "linear_f32_bias", run_linear);
  g_test_add_data_func ("/ops/conv/3x3-stride1", "conv3x3_s1", run_conv);
  g_test_add_data_func ("/ops/conv/3x3-stride2", "conv3x3_s2", run_conv);
  g_test_add_data_func ("/ops/conv/1x1", "conv1x1", run_conv);
  g_test_add_data_func ("/ops/conv/3x3-f32-nobias", "conv3x3_f32_nobias", run_conv);
  for (guint i = 0; i < G_N_ELEMENTS (conv_add_cases); i++)
    {
      g_autofree gchar *path = g_strdup_printf ("/ops/conv/add/%u", i);
      g_test_add_data_func (path, &conv_add_cases[i], test_conv_add);
    }
  for (guint i = 0; i < G_N_ELEMENTS (pack_cases); i++)
    {
      g_autofree gchar *path = g_strdup_printf ("/ops/weights/from-file/%s", pack_cases[i].name);
      g_test_add_data_func (path, &pack_cases[i], test_pack_from_file);
    }
  g_test_add_func ("/ops/group-norm", test_group_norm);
  g_test_add_func ("/ops/group-norm/silu", test_group_norm_silu);
  g_test_add_func ("/ops/layer-norm", test_layer_norm);
  g_test_add_func ("/ops/softmax", test_softmax);
  static const AttentionCase attention[] = {
    { "attn_self_40", 3, FALSE }, { "attn_cross_64", 2, FALSE }, { "attn_self_80", 2, FALSE },
    { "attn_self_160", 1, FALSE }, { "attn_causal_64", 4, TRUE },
  };
  for (guint i = 0; i < G_N_ELEMENTS (attention); i++)
    {
      g_autofree gchar *path = g_strdup_printf ("/ops/attention/%s", attention[i].name + 5);
      g_test_add_data_func (path, &attention[i], run_attention);
    }
  g_test_add_func ("/ops/attention/fused-qkv-views", test_attention_views);
  g_test_add_func ("/ops/attention/shapes", test_attention_shapes);
  g_test_add_data_func ("/ops/silu", "silu", run_unary);
  g_test_add_data_func ("/ops/gelu", "gelu", run_unary);
  g_test_add_data_func ("/ops/gelu/quick", "quick_gelu", run_unary);
  g_test_add_func ("/ops/gelu/geglu", test_geglu);
  g_test_add_data_func ("/ops/add/broadcast", "add_bcast", run_binary);
  g_test_add_data_func ("/ops/add/rows", "add_rows", run_binary);
  g_test_add_data_func ("/ops/mul/broadcast", "mul_bcast", run_binary);
  g_test_add_func ("/ops/upsample/nearest2x", test_upsample);
  g_test_add_func ("/ops/concat/channels", test_concat);
  g_test_add_func ("/ops/copy/transpose", test_copy_transpose);
  g_test_add_func ("/ops/copy/runs", test_copy_runs);
  g_test_add_func ("/ops/timestep-embedding", test_timestep_embedding);
  g_test_add_data_func ("/ops/sd15/conv-3x3-320-64x64", GINT_TO_POINTER (FALSE), test_large_conv);
  g_test_add_data_func ("/ops/sd15/conv-3x3-stride2-320", GINT_TO_POINTER (TRUE), test_large_conv);
  static const WinogradCase winograd[] = {
    { "unet-320-64x64", 320, 320, 64, 64, 2, 1, 1, FALSE },
    { "unet-640-32x32", 640, 640, 32, 32, 2, 1, 1, FALSE },
    { "unet-1280-16x16", 1280, 1280, 16, 16, 2, 1, 1, FALSE },
    { "unet-1280-8x8", 1280, 1280, 8, 8, 2, 1, 1, FALSE },
    { "unet-2560-1280-16x16", 2560, 1280, 16, 16, 1, 1, 1, FALSE },
    { "unet-1920-640-32x32", 1920, 640, 32, 32, 2, 1, 1, FALSE },
    { "odd-1500-100-6x5", 1500, 100, 6, 5, 1, 1, 1, FALSE },
    { "odd-2731-40-7x6", 2731, 40, 7, 6, 1, 1, 1, FALSE },
    { "vae-512-64x64", 512, 512, 64, 64, 1, 1, 1, FALSE },
    { "vae-128-256x256", 128, 128, 256, 256, 1, 1, 1, FALSE },
    { "odd-9x11-tails", 44, 20, 9, 11, 2, 1, 1, FALSE },
    { "pad-0-1", 64, 40, 13, 7, 1, 0, 1, FALSE },
    { "pad-2-0-f16-input", 36, 48, 10, 10, 1, 2, 0, TRUE },
    { "f16-input-40-24x20", 40, 24, 24, 20, 2, 1, 1, TRUE },
  };
  for (guint i = 0; i < G_N_ELEMENTS (winograd); i++)
    {
      g_autofree gchar *path = g_strdup_printf ("/ops/conv/winograd/%s", winograd[i].name);
      g_test_add_data_func (path, &winograd[i], test_winograd);
    }
  g_test_add_func ("/ops/sd15/matmul-4096x320x1280", test_large_gemm);
  g_test_add_data_func ("/ops/sd15/attention-self-4096", GINT_TO_POINTER (FALSE),
                        test_large_attention);
  g_test_add_data_func ("/ops/sd15/attention-cross-4096x77", GINT_TO_POINTER (TRUE),
                        test_large_attention);
  g_test_add_func ("/ops/sd15/group-norm-1280-8x8", test_large_group_norm);
  g_test_add_func ("/ops/errors/shapes", test_shape_errors);

  int status = g_test_run ();
  sdcl_safetensors_free (small);
  sdcl_safetensors_free (large);
  sdcl_engine_free (engine);
  return status;
}
