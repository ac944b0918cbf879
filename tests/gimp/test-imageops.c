/* test-imageops.c — the plug-in's geometry and mask arithmetic without
 * GIMP: work regions, model sizes, the grown and feathered mask against a
 * brute-force distance, the engine's mask and resampling.
 */
#include <math.h>

#include "imageops.h"

static void
test_model_size (void)
{
  guint w, h;

  sdcl_region_model_size (1000, 500, 512, 8, &w, &h);
  g_assert_cmpuint (w, ==, 512);
  g_assert_cmpuint (h, ==, 256);
  sdcl_region_model_size (37, 100, 64, 8, &w, &h);       /* small regions are enlarged */
  g_assert_cmpuint (h, ==, 64);
  g_assert_cmpuint (w, ==, 24);
  sdcl_region_model_size (2000, 10, 512, 8, &w, &h);     /* never below two multiples */
  g_assert_cmpuint (w, ==, 512);
  g_assert_cmpuint (h, ==, 16);
  sdcl_region_model_size (300, 200, 64, 32, &w, &h);
  g_assert_cmpuint (w % 32, ==, 0);
  g_assert_cmpuint (h % 32, ==, 0);
}

static void
test_region (void)
{
  const SdclRect   bounds = { 0, 0, 400, 300 };
  const SdclRect   sel = { 100, 100, 40, 20 };
  SdclMaskSettings s = { 4, 8, 10 };
  SdclRect         r;

  /* explicit padding: selection + grow + feather + padding on each side */
  g_assert_true (sdcl_region_around (&sel, &bounds, &s, FALSE, 512, &r));
  g_assert_cmpint (r.x, ==, 100 - 22);
  g_assert_cmpint (r.y, ==, 100 - 22);
  g_assert_cmpint (r.width, ==, 40 + 44);
  g_assert_cmpint (r.height, ==, 20 + 44);

  /* clipped to the layer */
  const SdclRect corner = { 0, 0, 10, 10 };
  g_assert_true (sdcl_region_around (&corner, &bounds, &s, FALSE, 512, &r));
  g_assert_cmpint (r.x, ==, 0);
  g_assert_cmpint (r.width, ==, 32);

  /* automatic padding: square-ish, at least the model's size where it fits */
  g_assert_true (sdcl_region_around (&sel, &bounds, &s, TRUE, 64, &r));
  g_assert_cmpint (r.width, >=, 64);
  g_assert_cmpint (r.height, >=, 64);
  g_assert_cmpint (3 * MIN (r.width, r.height), >=, 2 * MAX (r.width, r.height) - 3);
  g_assert_cmpint (r.x, <=, sel.x - 12);
  g_assert_cmpint (r.x + r.width, >=, sel.x + sel.width + 12);
  g_assert_true (sdcl_region_around (&sel, &bounds, &s, TRUE, 512, &r));
  g_assert_cmpint (r.width, ==, 400);                    /* the layer is the limit */
  g_assert_cmpint (r.height, ==, 300);

  /* a selection off the layer */
  const SdclRect off = { 500, 10, 10, 10 };
  g_assert_false (sdcl_region_around (&off, &bounds, &s, FALSE, 512, &r));

  /* automatic feather: a tenth of the diagonal, 32 px floor on large images */
  SdclMaskSettings a = { 2, -1, -1 };
  const SdclRect big = { 0, 0, 600, 800 };
  sdcl_mask_settings_resolve (&a, &big, 2000, 2000);
  g_assert_cmpint (a.feather, ==, 100);
  a.feather = -1;
  sdcl_mask_settings_resolve (&a, &sel, 2000, 2000);
  g_assert_cmpint (a.feather, ==, 32);
  a.feather = -1;
  sdcl_mask_settings_resolve (&a, &sel, 160, 120);
  g_assert_cmpint (a.feather, ==, 7);
}

static void
test_mask (void)
{
  const gint w = 64, h = 48, grow = 3, feather = 6;
  gfloat    *sel = g_new0 (gfloat, w * h);

  /* an L shape and a lone pixel */
  for (gint y = 10; y < 30; y++)
    for (gint x = 10; x < 16; x++)
      sel[y * w + x] = 1;
  for (gint y = 24; y < 30; y++)
    for (gint x = 16; x < 30; x++)
      sel[y * w + x] = 1;
  sel[5 * w + 50] = 1;
  sel[40 * w + 5] = 0.3f;                               /* soft, below the threshold */

  gfloat *mask = sdcl_mask_grow_feather (sel, w, h, grow, feather);
  for (gint y = 0; y < h; y++)
    for (gint x = 0; x < w; x++)
      {
        gdouble best = HUGE_VAL;
        for (gint v = 0; v < h; v++)
          for (gint u = 0; u < w; u++)
            if (sel[v * w + u] >= 0.5f)
              best = MIN (best, hypot (u - x, v - y));
        const gfloat m = mask[y * w + x];
        if (best <= grow)
          g_assert_cmpfloat (m, ==, 1.0f);
        else if (best >= grow + feather)
          g_assert_cmpfloat (m, ==, MAX (0.0f, sel[y * w + x]));
        else
          {
            const gdouble t = (best - grow) / feather;
            g_assert_cmpfloat_with_epsilon (m, 1 - t * t * (3 - 2 * t), 1e-5);
          }
      }
  g_assert_cmpfloat (mask[40 * w + 5], ==, 0.3f);

  guint8 *small = sdcl_mask_to_model (mask, w, h, 16, 12);
  /* a model pixel is 255 exactly when any pixel under it shows */
  for (gint my = 0; my < 12; my++)
    for (gint mx = 0; mx < 16; mx++)
      {
        gboolean any = FALSE;
        for (gint y = my * 4; y < my * 4 + 4; y++)
          for (gint x = mx * 4; x < mx * 4 + 4; x++)
            any |= mask[y * w + x] > 0.5f / 255;
        g_assert_cmpuint (small[my * 16 + mx], ==, any ? 255 : 0);
      }
  g_free (small);
  g_free (mask);
  g_free (sel);
}

static void
test_resample (void)
{
  const gint sw = 50, sh = 30;
  gfloat    *src = g_new (gfloat, sw * sh * 2);
  gfloat    *dst = g_new (gfloat, 123 * 77 * 2);
  gfloat    *back = g_new (gfloat, sw * sh * 2);

  /* a constant stays constant; a linear ramp stays a ramp */
  for (gint i = 0; i < sw * sh; i++)
    {
      src[i * 2] = 0.25f;
      src[i * 2 + 1] = (gfloat) (i % sw) / (sw - 1);
    }
  sdcl_resample (src, sw, sh, 2, dst, 123, 77);
  for (gint i = 0; i < 123 * 77; i++)
    g_assert_cmpfloat_with_epsilon (dst[i * 2], 0.25f, 1e-5);
  for (gint x = 10; x < 113; x++)
    {
      const gdouble centre = (x + 0.5) * sw / 123.0 - 0.5;
      g_assert_cmpfloat_with_epsilon (dst[(40 * 123 + x) * 2 + 1], centre / (sw - 1), 1e-4);
    }

  /* down again: close to where it started */
  sdcl_resample (dst, 123, 77, 2, back, sw, sh);
  for (gint y = 2; y < sh - 2; y++)
    for (gint x = 2; x < sw - 2; x++)
      g_assert_cmpfloat_with_epsilon (back[(y * sw + x) * 2 + 1], src[(y * sw + x) * 2 + 1], 0.01);

  /* same size: unchanged */
  sdcl_resample (src, sw, sh, 2, back, sw, sh);
  for (gint i = 0; i < sw * sh * 2; i++)
    g_assert_cmpfloat_with_epsilon (back[i], src[i], 1e-6);

  g_free (src);
  g_free (dst);
  g_free (back);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/plugin/model-size", test_model_size);
  g_test_add_func ("/plugin/region", test_region);
  g_test_add_func ("/plugin/mask", test_mask);
  g_test_add_func ("/plugin/resample", test_resample);
  return g_test_run ();
}
