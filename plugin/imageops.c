/* imageops.c — work region, masks and resampling for the plug-in.
 *
 * Defaults follow what inpainting front ends settled on (see SD-NOTES):
 * grow the selection a few pixels, feather about a tenth of its diagonal,
 * and show the model context of about half the selection's mean side on
 * each side, square-ish and at least the model's native size.
 */
#include <math.h>
#include <string.h>

#include "imageops.h"

/* ---- settings and region ----------------------------------------------------------------- */

void
sdcl_mask_settings_resolve (SdclMaskSettings *s, const SdclRect *sel, gint image_w,
                            gint image_h)
{
  if (s->grow < 0)
    s->grow = 0;
  if (s->feather < 0)
    {
      /* a tenth of the diagonal, and at least 32 px where the image is large
         enough for that to be a small part of it */
      const gdouble diag = sel ? hypot (sel->width, sel->height) : 0;
      const gint floor_px = MIN (32, MIN (image_w, image_h) / 16);
      s->feather = MAX ((gint) lround (diag / 10), floor_px);
    }
}

/* Grows [*pos, *pos + *len) to `want` around its centre, shifted to stay
 * inside [lo, lo + span) and cut to it. */
static void
widen (gint *pos, gint *len, gint want, gint lo, gint span)
{
  if (*len < want)
    {
      *pos -= (want - *len) / 2;
      *len = want;
    }
  if (*len >= span)
    {
      *pos = lo;
      *len = span;
      return;
    }
  if (*pos < lo)
    *pos = lo;
  if (*pos + *len > lo + span)
    *pos = lo + span - *len;
}

static gboolean
intersect (const SdclRect *a, const SdclRect *b, SdclRect *out)
{
  const gint x1 = MAX (a->x, b->x), y1 = MAX (a->y, b->y);
  const gint x2 = MIN (a->x + a->width, b->x + b->width);
  const gint y2 = MIN (a->y + a->height, b->y + b->height);
  if (x2 <= x1 || y2 <= y1)
    return FALSE;
  *out = (SdclRect) { x1, y1, x2 - x1, y2 - y1 };
  return TRUE;
}

gboolean
sdcl_region_around (const SdclRect *sel, const SdclRect *bounds, const SdclMaskSettings *s,
                    gboolean auto_padding, guint model_side, SdclRect *region)
{
  SdclRect touched;
  if (!sel)
    {
      *region = *bounds;
      return bounds->width > 0 && bounds->height > 0;
    }
  if (!intersect (sel, bounds, &touched))
    return FALSE;

  const gint reach = MAX (0, s->grow) + MAX (0, s->feather);
  SdclRect r = { sel->x - reach, sel->y - reach, sel->width + 2 * reach,
                 sel->height + 2 * reach };
  const gint pad = auto_padding ? MAX (MAX (r.width, r.height) / 16, (r.width + r.height) / 4)
                                : MAX (0, s->padding);
  r.x -= pad;
  r.y -= pad;
  r.width += 2 * pad;
  r.height += 2 * pad;
  if (!intersect (&r, bounds, &r))
    return FALSE;

  if (auto_padding)
    {
      /* square-ish (the short side at least 2/3 of the long one), and at
         least the model's own size where the layer has the room */
      const gint longest = MAX (r.width, r.height);
      const gint want = MAX ((gint) model_side, (2 * longest + 2) / 3);
      widen (&r.x, &r.width, MAX (want, r.width), bounds->x, bounds->width);
      widen (&r.y, &r.height, MAX (want, r.height), bounds->y, bounds->height);
    }
  *region = r;
  return TRUE;
}

void
sdcl_region_model_size (gint w, gint h, guint model_side, guint multiple, guint *mw, guint *mh)
{
  const gdouble scale = (gdouble) model_side / MAX (1, MAX (w, h));
  const gint m = MAX (1, (gint) multiple);
  gint sw = (gint) lround (w * scale / m) * m;
  gint sh = (gint) lround (h * scale / m) * m;
  *mw = (guint) MAX (sw, 2 * m);
  *mh = (guint) MAX (sh, 2 * m);
}

/* ---- masks --------------------------------------------------------------------------------- */

#define FAR 1e20

/* One dimension of the squared Euclidean distance transform of a sampled
 * function (Felzenszwalb and Huttenlocher, "Distance Transforms of Sampled
 * Functions", 2012): d[q] = min_p (q - p)^2 + f[p]. */
static void
distance_1d (const gdouble *f, gint n, gdouble *d, gint *v, gdouble *z)
{
  gint k = 0;
  v[0] = 0;
  z[0] = -HUGE_VAL;
  z[1] = HUGE_VAL;
  for (gint q = 1; q < n; q++)
    {
      gdouble s;
      for (;;)
        {
          const gint p = v[k];
          s = ((f[q] + (gdouble) q * q) - (f[p] + (gdouble) p * p)) / (2.0 * (q - p));
          if (s > z[k])
            break;
          k--;
        }
      k++;
      v[k] = q;
      z[k] = s;
      z[k + 1] = HUGE_VAL;
    }
  k = 0;
  for (gint q = 0; q < n; q++)
    {
      while (z[k + 1] < q)
        k++;
      d[q] = (gdouble) (q - v[k]) * (q - v[k]) + f[v[k]];
    }
}

gfloat *
sdcl_mask_grow_feather (const gfloat *sel, gint w, gint h, gint grow, gint feather)
{
  const gsize n = (gsize) w * h;
  const gint longest = MAX (w, h);
  gdouble *dist = g_new (gdouble, n);
  gdouble *f = g_new (gdouble, longest);
  gdouble *d = g_new (gdouble, longest);
  gdouble *z = g_new (gdouble, longest + 1);
  gint *v = g_new (gint, longest);
  gfloat *mask = g_new (gfloat, n);

  for (gsize i = 0; i < n; i++)
    dist[i] = sel[i] >= 0.5f ? 0 : FAR;
  for (gint x = 0; x < w; x++)
    {
      for (gint y = 0; y < h; y++)
        f[y] = dist[(gsize) y * w + x];
      distance_1d (f, h, d, v, z);
      for (gint y = 0; y < h; y++)
        dist[(gsize) y * w + x] = d[y];
    }
  for (gint y = 0; y < h; y++)
    {
      gdouble *row = dist + (gsize) y * w;
      memcpy (f, row, sizeof (gdouble) * w);
      distance_1d (f, w, row, v, z);
    }

  grow = MAX (0, grow);
  feather = MAX (0, feather);
  for (gsize i = 0; i < n; i++)
    {
      const gdouble r = dist[i] >= FAR / 2 ? HUGE_VAL : sqrt (dist[i]);
      gdouble m = 0;
      if (r <= grow)
        m = 1;
      else if (r < grow + feather)
        {
          const gdouble t = (r - grow) / feather;
          m = 1 - t * t * (3 - 2 * t);            /* smoothstep from 1 down to 0 */
        }
      mask[i] = MAX ((gfloat) m, CLAMP (sel[i], 0.0f, 1.0f));
    }

  g_free (dist);
  g_free (f);
  g_free (d);
  g_free (z);
  g_free (v);
  return mask;
}

guint8 *
sdcl_mask_to_model (const gfloat *mask, gint w, gint h, guint mw, guint mh)
{
  guint8 *out = g_new0 (guint8, (gsize) mw * mh);
  const gfloat visible = 0.5f / 255;   /* below this a u8 layer mask shows nothing */

  for (guint my = 0; my < mh; my++)
    {
      const gint y0 = (gint) floor ((gdouble) my * h / mh);
      const gint y1 = MIN (h, MAX (y0 + 1, (gint) ceil ((gdouble) (my + 1) * h / mh)));
      for (guint mx = 0; mx < mw; mx++)
        {
          const gint x0 = (gint) floor ((gdouble) mx * w / mw);
          const gint x1 = MIN (w, MAX (x0 + 1, (gint) ceil ((gdouble) (mx + 1) * w / mw)));
          gboolean any = FALSE;
          for (gint y = y0; y < y1 && !any; y++)
            for (gint x = x0; x < x1 && !any; x++)
              any = mask[(gsize) y * w + x] > visible;
          out[(gsize) my * mw + mx] = any ? 255 : 0;
        }
    }
  return out;
}

/* ---- resampling ---------------------------------------------------------------------------- */

typedef struct
{
  gint    first;                     /* first source index */
  gint    n;                         /* taps */
  gfloat *w;                         /* n weights, summing to 1 */
} Taps;

static gdouble
catmull_rom (gdouble x)
{
  x = fabs (x);
  if (x < 1)
    return 1.5 * x * x * x - 2.5 * x * x + 1;
  if (x < 2)
    return -0.5 * x * x * x + 2.5 * x * x - 4 * x + 2;
  return 0;
}

static gdouble
tent (gdouble x)
{
  x = fabs (x);
  return x < 1 ? 1 - x : 0;
}

/* Taps for n_out samples over n_in; taps reaching past an edge are folded
 * onto the edge sample (clamp). */
static Taps *
make_taps (gint n_in, gint n_out, gfloat **storage)
{
  const gdouble scale = (gdouble) n_out / n_in;
  const gboolean enlarge = scale >= 1;
  const gdouble support = enlarge ? 2 : 1 / scale;     /* in source pixels */
  const gint max_taps = (gint) ceil (2 * support) + 2;
  Taps *taps = g_new (Taps, n_out);
  gfloat *w = *storage = g_new0 (gfloat, (gsize) n_out * max_taps);

  for (gint o = 0; o < n_out; o++, w += max_taps)
    {
      const gdouble centre = (o + 0.5) / scale - 0.5;
      const gint lo = (gint) floor (centre - support) + 1;
      const gint hi = (gint) ceil (centre + support) - 1;
      const gint first = CLAMP (lo, 0, n_in - 1);
      const gint last = CLAMP (hi, 0, n_in - 1);
      gdouble sum = 0;
      for (gint i = lo; i <= hi; i++)
        {
          const gdouble k = enlarge ? catmull_rom (i - centre) : tent ((i - centre) * scale);
          w[CLAMP (i, 0, n_in - 1) - first] += (gfloat) k;
          sum += k;
        }
      for (gint i = 0; i <= last - first; i++)
        w[i] = sum != 0 ? (gfloat) (w[i] / sum) : 0;
      if (sum == 0)
        w[CLAMP ((gint) lround (centre), first, last) - first] = 1;
      taps[o] = (Taps) { first, last - first + 1, w };
    }
  return taps;
}

void
sdcl_resample (const gfloat *src, gint sw, gint sh, gint c, gfloat *dst, gint dw, gint dh)
{
  gfloat *hstore, *vstore;
  Taps *htaps = make_taps (sw, dw, &hstore);
  Taps *vtaps = make_taps (sh, dh, &vstore);
  gfloat *tmp = g_new (gfloat, (gsize) sh * dw * c);   /* rows resampled, [sh][dw][c] */

  for (gint y = 0; y < sh; y++)
    for (gint x = 0; x < dw; x++)
      {
        const Taps *t = &htaps[x];
        gfloat *out = tmp + ((gsize) y * dw + x) * c;
        for (gint ch = 0; ch < c; ch++)
          {
            gfloat acc = 0;
            for (gint i = 0; i < t->n; i++)
              acc += t->w[i] * src[((gsize) y * sw + t->first + i) * c + ch];
            out[ch] = acc;
          }
      }
  for (gint y = 0; y < dh; y++)
    {
      const Taps *t = &vtaps[y];
      for (gint x = 0; x < dw; x++)
        for (gint ch = 0; ch < c; ch++)
          {
            gfloat acc = 0;
            for (gint i = 0; i < t->n; i++)
              acc += t->w[i] * tmp[((gsize) (t->first + i) * dw + x) * c + ch];
            dst[((gsize) y * dw + x) * c + ch] = acc;
          }
    }

  g_free (tmp);
  g_free (htaps);
  g_free (vtaps);
  g_free (hstore);
  g_free (vstore);
}
