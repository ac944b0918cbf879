/* image.c — PNG files through libpng: writing (atomically, with text
 * chunks) and reading any PNG as 8-bit RGB or as one 8-bit channel (masks).
 * Reading never trusts the file: sizes are capped before allocation and
 * every libpng error (bad CRC, truncation) becomes a GError. Then resizing
 * of RGB pixels: an edge-preserving enlargement, a box filter to shrink.
 */
#include <png.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>

#include "sdcl.h"

/* libpng reports errors through longjmp; the message is kept here. */
typedef struct
{
  gchar message[256];
} PngError;

static void
png_error_fn (png_structp png, png_const_charp msg)
{
  PngError *e = png_get_error_ptr (png);
  g_strlcpy (e->message, msg, sizeof e->message);
  png_longjmp (png, 1);
}

static void
png_warning_fn (png_structp png, png_const_charp msg)
{
}

/* ---- writing ------------------------------------------------------------ */

/* tEXt holds Latin-1 only, so a value with any byte above 127 (UTF-8: a
 * prompt in another script) goes in an iTXt chunk, as Pillow, and so
 * sd-webui, does. libpng copies the chunks: they live only for this call. */
static void
set_text (png_structp png, png_infop info, const gchar * const *text)
{
  const guint n = text ? g_strv_length ((gchar **) text) / 2 : 0;
  if (n == 0)
    return;
  g_autofree png_textp chunks = g_new0 (png_text, n);
  for (guint i = 0; i < n; i++)
    {
      const gchar *value = text[2 * i + 1];
      chunks[i].compression = g_str_is_ascii (value) ? PNG_TEXT_COMPRESSION_NONE
                                                     : PNG_ITXT_COMPRESSION_NONE;
      chunks[i].key = (png_charp) text[2 * i];
      chunks[i].text = (png_charp) value;
    }
  png_set_text (png, info, chunks, n);
}

static void
write_to_bytes (png_structp png, png_bytep data, png_size_t length)
{
  g_byte_array_append (png_get_io_ptr (png), data, length);
}

static void
flush_nothing (png_structp png)
{
}

/* The whole file in memory; PNGs of the sizes we make are a few MB. */
static GByteArray *
encode_png (guint width, guint height, guint channels, const guint8 *pixels,
            const gchar * const *text, PngError *perr)
{
  GByteArray *volatile out = g_byte_array_new ();
  png_structp png = png_create_write_struct (PNG_LIBPNG_VER_STRING, perr, png_error_fn,
                                             png_warning_fn);
  png_infop info = png ? png_create_info_struct (png) : NULL;
  if (!info || setjmp (png_jmpbuf (png)))
    {
      if (!info)
        g_strlcpy (perr->message, "out of memory", sizeof perr->message);
      png_destroy_write_struct (&png, &info);
      g_byte_array_unref (out);
      return NULL;
    }
  png_set_write_fn (png, out, write_to_bytes, flush_nothing);
  png_set_IHDR (png, info, width, height, 8,
                channels == 4 ? PNG_COLOR_TYPE_RGBA : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  set_text (png, info, text);
  png_write_info (png, info);
  for (guint y = 0; y < height; y++)
    png_write_row (png, pixels + (gsize) y * width * channels);
  png_write_end (png, info);
  png_destroy_write_struct (&png, &info);
  return out;
}

gboolean
sdcl_png_write (const gchar *path, guint width, guint height, guint channels,
                const guint8 *pixels, const gchar * const *text, GError **error)
{
  g_return_val_if_fail (channels == 3 || channels == 4, FALSE);
  PngError perr = { "" };
  g_autoptr (GByteArray) bytes = encode_png (width, height, channels, pixels, text, &perr);
  if (!bytes)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "writing %s failed: %s", path,
                   perr.message);
      return FALSE;
    }
  /* Written beside and renamed; 0666 less the umask, as any new file. */
  g_autoptr (GError) local = NULL;
  if (!g_file_set_contents_full (path, (const gchar *) bytes->data, bytes->len,
                                 G_FILE_SET_CONTENTS_CONSISTENT, 0666, &local))
    {
      /* GLib's message names the file and the reason. */
      g_set_error_literal (error, G_IO_ERROR,
                           local->domain == G_FILE_ERROR
                             ? g_io_error_from_file_error (local->code) : G_IO_ERROR_FAILED,
                           local->message);
      return FALSE;
    }
  return TRUE;
}

/* ---- reading ------------------------------------------------------------ */

/* Larger images than this are refused before anything is allocated. */
#define MAX_SIDE 16384

static const guint8 png_signature[8] = { 137, 'P', 'N', 'G', '\r', '\n', 26, '\n' };

/* Opens `path` and checks the signature, so that "not a PNG at all" gets its
 * own message; the stream is left just past the 8 signature bytes. */
static FILE *
open_png (const gchar *path, GError **error)
{
  FILE *f = g_fopen (path, "rb");
  if (!f)
    {
      int saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), "cannot open %s: %s", path,
                   g_strerror (saved));
      return NULL;
    }
  guint8 sig[8];
  if (fread (sig, 1, sizeof sig, f) != sizeof sig || memcmp (sig, png_signature, sizeof sig) != 0)
    {
      fclose (f);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s is not a PNG file", path);
      return NULL;
    }
  return f;
}

/* Transforms that turn any PNG into 8 bits per channel, no alpha: palette
 * and low-depth grey expanded, 16 bits scaled (rounded, v * 255 / 65535),
 * alpha and tRNS dropped, interlacing undone. Grey stays one channel
 * unless `rgb`. */
static void
set_8bit_transforms (png_structp png, gboolean rgb)
{
  png_set_expand (png);
  png_set_scale_16 (png);
  png_set_strip_alpha (png);
  if (rgb)
    png_set_gray_to_rgb (png);
  png_set_interlace_handling (png);
}

/* Luminance of 8-bit RGB with Rec. 601 weights in the integer form Pillow's
 * convert("L") uses (R 19595, G 38470, B 7471 over 65536, rounded), so a
 * colour mask gives the same bytes here as in sd-webui, which reads masks
 * through Pillow. In place: gray[i] may be rgb[i]. */
static void
rgb_to_luminance (const guint8 *rgb, guint8 *gray, gsize n)
{
  for (gsize i = 0; i < n; i++)
    {
      const guint8 *p = rgb + 3 * i;
      gray[i] = (guint8) ((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
    }
}

/* Reads a PNG as 8-bit pixels of `want` channels: 3 (RGB) or 1 (grey, colour
 * images as their luminance). */
static guint8 *
png_read_8bit (const gchar *path, guint want, guint *width, guint *height, GError **error)
{
  FILE *f = open_png (path, error);
  if (!f)
    return NULL;
  PngError perr = { "" };
  png_structp png = png_create_read_struct (PNG_LIBPNG_VER_STRING, &perr, png_error_fn,
                                            png_warning_fn);
  png_infop info = png ? png_create_info_struct (png) : NULL;
  guint8 *volatile pixels = NULL;
  png_bytepp volatile rows = NULL;
  if (!info || setjmp (png_jmpbuf (png)))
    {
      png_destroy_read_struct (&png, &info, NULL);
      fclose (f);
      g_free (pixels);
      g_free (rows);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s is not a readable PNG: %s",
                   path, info ? perr.message : "out of memory");
      return NULL;
    }
  png_init_io (png, f);
  png_set_sig_bytes (png, sizeof png_signature);
  png_set_user_limits (png, MAX_SIDE, MAX_SIDE);
  png_read_info (png, info);
  const gboolean colour = (png_get_color_type (png, info) & PNG_COLOR_MASK_COLOR) != 0;
  set_8bit_transforms (png, want == 3);
  png_read_update_info (png, info);
  const guint w = png_get_image_width (png, info), h = png_get_image_height (png, info);
  const guint channels = png_get_channels (png, info);
  if (channels != (want == 3 || colour ? 3u : 1u) || png_get_bit_depth (png, info) != 8
      || png_get_rowbytes (png, info) != (gsize) w * channels)
    png_error (png, "unexpected pixel layout after conversion to 8 bits");
  gsize row_bytes = (gsize) w * channels, total;
  if (!g_size_checked_mul (&total, row_bytes, h))
    png_error (png, "image too large");
  pixels = g_malloc (total);
  rows = g_new (png_bytep, h);
  for (guint y = 0; y < h; y++)
    rows[y] = pixels + (gsize) y * row_bytes;
  png_read_image (png, rows);
  png_read_end (png, NULL);
  png_destroy_read_struct (&png, &info, NULL);
  fclose (f);
  g_free (rows);
  if (channels == 3 && want == 1)
    rgb_to_luminance (pixels, pixels, (gsize) w * h);
  *width = w;
  *height = h;
  return pixels;
}

guint8 *
sdcl_png_read_rgb (const gchar *path, guint *width, guint *height, GError **error)
{
  return png_read_8bit (path, 3, width, height, error);
}

guint8 *
sdcl_png_read_gray (const gchar *path, guint *width, guint *height, GError **error)
{
  return png_read_8bit (path, 1, width, height, error);
}

/* ---- resizing ------------------------------------------------------------ */

/* Shrinking: each output pixel is the exact area average of the source
 * pixels it covers. Overlaps are counted in units of 1/(n_in * n_out) of a
 * source pixel, in integers, so a 2:1 reduction weighs each pixel exactly
 * one half. `stride` weights per output sample, from source index first[o]. */
static gdouble *
box_weights (guint n_in, guint n_out, guint *first, guint *stride)
{
  *stride = (n_in + n_out - 1) / n_out + 1;
  gdouble *w = g_new0 (gdouble, (gsize) n_out * *stride);
  for (guint o = 0; o < n_out; o++)
    {
      const guint64 lo = (guint64) o * n_in, hi = lo + n_in;   /* in 1/n_out source pixels */
      first[o] = (guint) (lo / n_out);
      for (guint i = first[o]; i < n_in && (guint64) i * n_out < hi; i++)
        {
          const guint64 a = MAX ((guint64) i * n_out, lo), b = MIN ((guint64) (i + 1) * n_out, hi);
          w[(gsize) o * *stride + (i - first[o])] = (gdouble) (b - a) / n_in;
        }
    }
  return w;
}

/* out_width <= width and out_height <= height */
static guint8 *
shrink (const guint8 *rgb, guint width, guint height, guint out_width, guint out_height)
{
  g_autofree guint *xfirst = g_new (guint, out_width);
  g_autofree guint *yfirst = g_new (guint, out_height);
  guint xs, ys;
  g_autofree gdouble *xw = box_weights (width, out_width, xfirst, &xs);
  g_autofree gdouble *yw = box_weights (height, out_height, yfirst, &ys);
  g_autofree gdouble *rows = g_new (gdouble, (gsize) height * out_width * 3); /* [height][out_width][3] */
  for (guint y = 0; y < height; y++)
    for (guint o = 0; o < out_width; o++)
      for (guint c = 0; c < 3; c++)
        {
          gdouble acc = 0;
          for (guint k = 0; k < xs && xfirst[o] + k < width; k++)
            acc += xw[(gsize) o * xs + k] * rgb[((gsize) y * width + xfirst[o] + k) * 3 + c];
          rows[((gsize) y * out_width + o) * 3 + c] = acc;
        }
  guint8 *out = g_new (guint8, (gsize) out_width * out_height * 3);
  for (guint o = 0; o < out_height; o++)
    for (gsize x = 0; x < (gsize) out_width * 3; x++)
      {
        gdouble acc = 0;
        for (guint k = 0; k < ys && yfirst[o] + k < height; k++)
          acc += yw[(gsize) o * ys + k] * rows[(gsize) (yfirst[o] + k) * out_width * 3 + x];
        out[(gsize) o * out_width * 3 + x] = (guint8) CLAMP (floor (acc + 0.5), 0, 255);
      }
  return out;
}

/* Enlarging. Each output pixel averages sub x sub samples (antialiasing).
 * A sample starts as the Catmull-Rom interpolant c of the 4x4 source
 * pixels around it. Near an edge, c is snapped across it along the edge's
 * colour axis: of the pure colours around, A and B are the two the sample
 * lies between; c is projected onto A -> B (t), t is rounded to 0 or 1, and
 * what lies off that axis (a gradient behind the edge, texture) is kept:
 * c + (round(t) - t)(B - A). The edge then follows a smooth contour of the
 * interpolant, so curves stay curves, one output pixel wide.
 *
 * Pure colours are those that are not a blend of two neighbours, as
 * antialiased edge pixels are. Where the edge is, and how near, is read
 * through a cubic B-spline (smoother than Catmull-Rom, whose half-way
 * contour scallops between pixel centres around a curve), so that nothing
 * changes abruptly from one source pixel to the next. The pure colours
 * are gathered per cell (the square between four source pixel centres);
 * a sample is snapped with those of the four cells nearest it and the
 * results blended by its distance to their centres, since neighbouring
 * cells can choose different A and B where a soft picture (a model's
 * output) has few pure colours, and one cell's alone would leave a seam
 * at every cell border. Distances are Euclidean in 8-bit RGB. */
#define EDGE_LO   16.0f   /* neighbouring pixels this close are no edge: gradients, noise */
#define EDGE_HI   40.0f   /* ... and this far apart make a full one */
#define PAIR_LO   32.0f   /* two colours this close are never snapped apart */
#define PAIR_HI   64.0f
#define BLEND_TOL 4.0f    /* a blend lies within this + BLEND_REL * |B - A| of A -> B */
#define BLEND_REL 0.15f
#define BLEND_MIN 0.01f   /* ... and this far from either end */
#define MAX_PURE  64      /* pure colours kept per cell */
#define CLUSTER   12.0f   /* colours this close count as one side of an edge */
#define RING_KEEP 2.0f    /* overshoot past A or B kept up to this (noise, not ringing) */

typedef struct
{
  gint   cell;            /* floor of the source position, + 1: 0 .. n */
  gfloat f;               /* the position's fraction past that floor */
  guint  idx[4];          /* source indices of the taps, clamped */
  gfloat w[4];            /* Catmull-Rom weights: the colour */
  gfloat b[4];            /* cubic B-spline weights: the edge */
} Tap;

/* Where samples between source pixels cx - 1 .. cx and cy - 1 .. cy take
 * their pure colours from: their support (columns cx - 2 .. cx + 1, rows
 * likewise, clamped), a pixel around it (a soft edge's far side may lie
 * just outside), and what the blends there are made of. */
typedef struct
{
  guint first, count;     /* pool[first .. first + count): pixel indices; 0: no edge near */
} Cell;

static gfloat
smoothstep (gfloat lo, gfloat hi, gfloat x)
{
  const gfloat t = CLAMP ((x - lo) / (hi - lo), 0.0f, 1.0f);
  return t * t * (3 - 2 * t);
}

static gfloat
distance2 (const gfloat *a, const gfloat *b)
{
  const gfloat d0 = a[0] - b[0], d1 = a[1] - b[1], d2 = a[2] - b[2];
  return d0 * d0 + d1 * d1 + d2 * d2;
}

/* Where p falls on a -> b (0 at a, 1 at b; unclamped), and its squared
 * distance from the segment. */
static gfloat
project (const gfloat *p, const gfloat *a, const gfloat *b, gfloat *off2)
{
  const gfloat d[3] = { b[0] - a[0], b[1] - a[1], b[2] - a[2] };
  const gfloat len2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
  const gfloat t = len2 > 0 ? ((p[0] - a[0]) * d[0] + (p[1] - a[1]) * d[1]
                               + (p[2] - a[2]) * d[2]) / len2 : 0;
  const gfloat tc = CLAMP (t, 0.0f, 1.0f);
  const gfloat q[3] = { a[0] + tc * d[0], a[1] + tc * d[1], a[2] + tc * d[2] };
  *off2 = distance2 (p, q);
  return t;
}

static void
load_rgb (const guint8 *rgb, gsize pixel, gfloat *out)
{
  const guint8 *p = rgb + pixel * 3;
  out[0] = p[0];
  out[1] = p[1];
  out[2] = p[2];
}

/* Samples per output pixel along an axis enlarged by `factor` (>= 1). */
static guint
subsamples (gdouble factor)
{
  return factor <= 1 ? 1 : factor <= 4 ? 2 : 4;
}

static Tap *
cubic_taps (guint n_in, guint n_out, guint sub)
{
  Tap *taps = g_new (Tap, (gsize) n_out * sub);
  const gdouble scale = (gdouble) n_in / n_out;
  for (guint o = 0; o < n_out; o++)
    for (guint s = 0; s < sub; s++)
      {
        const gdouble u = (o + (s + 0.5) / sub) * scale - 0.5;   /* > -0.5, < n_in - 0.5 */
        const gdouble base = floor (u);
        const gfloat f = (gfloat) (u - base);
        Tap *t = &taps[(gsize) o * sub + s];
        t->cell = (gint) base + 1;
        t->f = f;
        for (gint k = 0; k < 4; k++)
          t->idx[k] = (guint) CLAMP ((gint) base - 1 + k, 0, (gint) n_in - 1);
        t->w[0] = ((-0.5f * f + 1.0f) * f - 0.5f) * f;
        t->w[1] = (1.5f * f - 2.5f) * f * f + 1.0f;
        t->w[2] = ((-1.5f * f + 2.0f) * f + 0.5f) * f;
        t->w[3] = (0.5f * f - 0.5f) * f * f;
        t->b[0] = (1 - f) * (1 - f) * (1 - f) / 6;
        t->b[1] = ((3 * f - 6) * f * f + 4) / 6;
        t->b[2] = (((-3 * f + 3) * f + 3) * f + 1) / 6;
        t->b[3] = f * f * f / 6;
      }
  return taps;
}

/* The pixels of (x, y)'s 3x3 neighbourhood inside the image, centre
 * excluded; returns how many. */
static guint
neighbours (guint width, guint height, guint x, guint y, guint32 *at)
{
  guint n = 0;
  for (gint dy = -1; dy <= 1; dy++)
    for (gint dx = -1; dx <= 1; dx++)
      {
        const gint nx = (gint) x + dx, ny = (gint) y + dy;
        if ((dx || dy) && nx >= 0 && ny >= 0 && nx < (gint) width && ny < (gint) height)
          at[n++] = (guint32) ny * width + (guint32) nx;
      }
  return n;
}

/* Whether pixel p is a blend of two of its neighbours (an antialiased edge
 * pixel, not a colour of its own), and if so which: they go to ends.
 * Judged once per pixel, so every cell that sees it agrees. */
static gboolean
find_blend (const guint8 *rgb, const guint32 *at, guint n, guint32 p, guint32 *ends)
{
  gfloat c[3], nb[8][3];
  load_rgb (rgb, p, c);
  for (guint k = 0; k < n; k++)
    load_rgb (rgb, at[k], nb[k]);
  for (guint a = 0; a < n; a++)
    for (guint b = a + 1; b < n; b++)
      {
        const gfloat len = sqrtf (distance2 (nb[a], nb[b]));
        if (len < PAIR_LO)
          continue;
        gfloat off2;
        const gfloat t = project (c, nb[a], nb[b], &off2);
        const gfloat tol = BLEND_TOL + BLEND_REL * len;
        if (t > BLEND_MIN && t < 1 - BLEND_MIN && off2 <= tol * tol)
          {
            ends[0] = at[a];
            ends[1] = at[b];
            return TRUE;
          }
      }
  return FALSE;
}

/* Appends `pixel` to the cell's pure colours (the pool's tail) unless its
 * colour is there already. */
static void
add_pure (GArray *pool, const Cell *cell, const guint8 *rgb, guint32 pixel)
{
  if (pool->len - cell->first >= MAX_PURE)
    return;
  for (guint k = cell->first; k < pool->len; k++)
    if (memcmp (rgb + (gsize) g_array_index (pool, guint32, k) * 3, rgb + (gsize) pixel * 3,
                3) == 0)
      return;
  g_array_append_val (pool, pixel);
}

/* Adds the pure colours a blend is made of: its ends, or theirs where an
 * end is a blend too (a soft edge), up to `depth` steps away. */
static void
add_ends (GArray *pool, const Cell *cell, const guint8 *rgb, const guint8 *blend,
          const guint32 *ends, guint32 pixel, guint depth)
{
  for (guint e = 0; e < 2; e++)
    {
      const guint32 end = ends[2 * (gsize) pixel + e];
      if (!blend[end])
        add_pure (pool, cell, rgb, end);
      else if (depth > 1)
        add_ends (pool, cell, rgb, blend, ends, end, depth - 1);
    }
}

static Cell
classify_cell (const guint8 *rgb, const gfloat *edge, const guint8 *blend, const guint32 *ends,
               guint width, guint height, gint cx, gint cy, GArray *pool)
{
  guint32 at[36];
  gboolean near = FALSE;
  for (gint j = 0; j < 6; j++)
    for (gint i = 0; i < 6; i++)
      {
        const guint x = (guint) CLAMP (cx - 3 + i, 0, (gint) width - 1);
        const guint y = (guint) CLAMP (cy - 3 + j, 0, (gint) height - 1);
        at[j * 6 + i] = (guint32) y * width + x;
        near = near || (i > 0 && i < 5 && j > 0 && j < 5 && edge[at[j * 6 + i]] > 0);
      }
  Cell cell = { pool->len, 0 };
  if (!near)
    return cell;
  for (guint k = 0; k < 36; k++)
    {
      if (!blend[at[k]])
        add_pure (pool, &cell, rgb, at[k]);
      else
        add_ends (pool, &cell, rgb, blend, ends, at[k], 3);
    }
  cell.count = pool->len - cell.first;
  if (cell.count < 2)
    {
      g_array_set_size (pool, cell.first);
      cell.count = 0;
    }
  return cell;
}

/* The mean of the colours within CLUSTER of col[k]: noise, or a gentle
 * gradient, around one side of an edge, so that the level it snaps to does
 * not jump from one noisy pixel's colour to the next. */
static void
cluster_mean (gfloat (*col)[3], guint n, guint k, gfloat *mean)
{
  gfloat sum[3] = { 0, 0, 0 };
  guint count = 0;
  for (guint m = 0; m < n; m++)
    if (distance2 (col[m], col[k]) <= CLUSTER * CLUSTER)
      {
        for (guint i = 0; i < 3; i++)
          sum[i] += col[m][i];
        count++;
      }
  for (guint i = 0; i < 3; i++)
    mean[i] = sum[i] / count;
}

/* Snaps the sample c across the edge (see above); e is the same sample
 * through the B-spline, `near` how near an edge it is (0 .. 1). Only the
 * band around the edge's contour (e at least 2 % of the way from A to B,
 * fully from 8 %) is snapped, so that the snapped region ends smoothly;
 * beyond it c loses only what overshoots A or B (Catmull-Rom rings). */
static void
snap (gfloat *c, const gfloat *e, gfloat near, const Cell *cell, const guint32 *pure,
      const guint8 *rgb)
{
  gfloat col[MAX_PURE][3];
  const guint n = cell->count;
  for (guint k = 0; k < n; k++)
    load_rgb (rgb, pure[k], col[k]);

  /* A: the pure colour nearest e; B: of those far enough from A to make
     an edge with it, the one that with A best explains e */
  guint a = 0;
  for (guint k = 1; k < n; k++)
    if (distance2 (e, col[k]) < distance2 (e, col[a]))
      a = k;
  gint b = -1;
  gfloat best = G_MAXFLOAT;
  for (guint k = 0; k < n; k++)
    {
      if (distance2 (col[a], col[k]) < PAIR_LO * PAIR_LO)
        continue;
      gfloat off2;
      project (e, col[a], col[k], &off2);
      if (off2 < best)
        {
          best = off2;
          b = (gint) k;
        }
    }
  if (b < 0)
    return;
  gfloat A[3], B[3], off2;
  cluster_mean (col, n, a, A);
  cluster_mean (col, n, (guint) b, B);
  const gfloat len = sqrtf (distance2 (A, B));
  const gfloat te = project (e, A, B, &off2), tc = project (c, A, B, &off2);
  const gfloat ring = RING_KEEP / len;
  const gfloat kept = CLAMP (tc, -ring, 1 + ring);
  const gfloat band = 1 - smoothstep (0.42f, 0.48f, fabsf (te - 0.5f));
  const gfloat s = near * smoothstep (PAIR_LO, PAIR_HI, len);
  const gfloat move = s * (kept - tc + band * ((te >= 0.5f ? 1.0f : 0.0f) - kept));
  for (guint i = 0; i < 3; i++)
    c[i] += move * (B[i] - A[i]);
}

/* The two cells nearest a sample along one axis (its own and the one on
 * the side it is nearer to, clamped to 0 .. last) and their weights, linear
 * in the distance to each cell's centre: a sample on the border between
 * two cells takes half of each, so nothing jumps where cells meet. */
static void
cell_pair (const Tap *t, gint last, gint *cell, gfloat *w)
{
  cell[0] = t->cell;
  if (t->f < 0.5f)
    {
      cell[1] = MAX (t->cell - 1, 0);
      w[0] = 0.5f + t->f;
    }
  else
    {
      cell[1] = MIN (t->cell + 1, last);
      w[0] = 1.5f - t->f;
    }
  w[1] = 1.0f - w[0];
}

/* out_width >= width and out_height >= height */
static guint8 *
enlarge (const guint8 *rgb, guint width, guint height, guint out_width, guint out_height)
{
  const guint sx = subsamples ((gdouble) out_width / width);
  const guint sy = subsamples ((gdouble) out_height / height);
  g_autofree Tap *cols = cubic_taps (width, out_width, sx);
  g_autofree Tap *rows = cubic_taps (height, out_height, sy);

  /* per pixel: a blend (and of what), and how much of an edge it is next
     to (the largest step to a neighbour), then within a pixel of that */
  const gsize n = (gsize) width * height;
  g_autofree guint8 *blend = g_new (guint8, n);
  g_autofree guint32 *ends = g_new (guint32, 2 * n);
  g_autofree gfloat *step = g_new (gfloat, n);
  g_autofree gfloat *edge = g_new (gfloat, n);
  for (guint y = 0; y < height; y++)
    for (guint x = 0; x < width; x++)
      {
        const guint32 p = y * width + x;
        guint32 at[8];
        const guint k = neighbours (width, height, x, y, at);
        gfloat c[3], q[3], most = 0;
        load_rgb (rgb, p, c);
        for (guint i = 0; i < k; i++)
          {
            load_rgb (rgb, at[i], q);
            most = MAX (most, distance2 (c, q));
          }
        step[p] = smoothstep (EDGE_LO, EDGE_HI, sqrtf (most));
        blend[p] = find_blend (rgb, at, k, p, ends + 2 * (gsize) p);
      }
  for (guint y = 0; y < height; y++)
    for (guint x = 0; x < width; x++)
      {
        const guint32 p = y * width + x;
        guint32 at[8];
        const guint k = neighbours (width, height, x, y, at);
        edge[p] = step[p];
        for (guint i = 0; i < k; i++)
          edge[p] = MAX (edge[p], step[at[i]]);
      }

  const guint cells_w = width + 1;
  g_autofree Cell *cells = g_new (Cell, (gsize) cells_w * (height + 1));
  g_autoptr (GArray) pool = g_array_new (FALSE, FALSE, sizeof (guint32));
  for (guint cy = 0; cy <= height; cy++)
    for (guint cx = 0; cx <= width; cx++)
      cells[(gsize) cy * cells_w + cx] = classify_cell (rgb, edge, blend, ends, width, height,
                                                        (gint) cx, (gint) cy, pool);
  const guint32 *pure = (const guint32 *) (gpointer) pool->data;

  /* a source row interpolated vertically: Catmull-Rom colour [width][3],
     B-spline colour [width][3], B-spline edge [width] */
  const gsize row = (gsize) width * 3;
  g_autofree gfloat *line = g_new (gfloat, 2 * row + width);
  gfloat *line_b = line + row, *line_edge = line + 2 * row;
  g_autofree gfloat *acc = g_new (gfloat, (gsize) out_width * 3);
  guint8 *out = g_new (guint8, (gsize) out_width * out_height * 3);
  for (guint oy = 0; oy < out_height; oy++)
    {
      memset (acc, 0, sizeof (gfloat) * out_width * 3);
      for (guint l = 0; l < sy; l++)
        {
          const Tap *ty = &rows[(gsize) oy * sy + l];
          for (gsize x = 0; x < row; x++)
            {
              gfloat v = 0, vb = 0;
              for (guint k = 0; k < 4; k++)
                {
                  const guint8 p = rgb[(gsize) ty->idx[k] * row + x];
                  v += ty->w[k] * p;
                  vb += ty->b[k] * p;
                }
              line[x] = v;
              line_b[x] = vb;
            }
          for (guint x = 0; x < width; x++)
            {
              gfloat v = 0;
              for (guint k = 0; k < 4; k++)
                v += ty->b[k] * edge[(gsize) ty->idx[k] * width + x];
              line_edge[x] = v;
            }
          gint cy[2];
          gfloat wy[2];
          cell_pair (ty, (gint) height, cy, wy);
          for (guint ox = 0; ox < out_width; ox++)
            for (guint m = 0; m < sx; m++)
              {
                const Tap *tx = &cols[(gsize) ox * sx + m];
                gfloat c[3] = { 0, 0, 0 };
                for (guint k = 0; k < 4; k++)
                  for (guint i = 0; i < 3; i++)
                    c[i] += tx->w[k] * line[tx->idx[k] * 3 + i];
                /* snapped with the pure colours of each of the four
                   nearest cells, and blended by the weights of cell_pair */
                gint cx[2];
                gfloat wx[2];
                cell_pair (tx, (gint) width, cx, wx);
                const Cell *cell[4];
                gboolean any = FALSE;
                for (guint k = 0; k < 4; k++)
                  {
                    cell[k] = &cells[(gsize) cy[k / 2] * cells_w + cx[k % 2]];
                    any = any || cell[k]->count;
                  }
                gfloat near = 0;
                if (any)
                  for (guint k = 0; k < 4; k++)
                    near += tx->b[k] * line_edge[tx->idx[k]];
                if (near > 0)
                  {
                    gfloat e[3] = { 0, 0, 0 }, sum[3] = { 0, 0, 0 };
                    for (guint k = 0; k < 4; k++)
                      for (guint i = 0; i < 3; i++)
                        e[i] += tx->b[k] * line_b[tx->idx[k] * 3 + i];
                    for (guint k = 0; k < 4; k++)
                      {
                        const gfloat w = wy[k / 2] * wx[k % 2];
                        gfloat ck[3] = { c[0], c[1], c[2] };
                        if (w > 0 && cell[k]->count)
                          snap (ck, e, MIN (near, 1.0f), cell[k], pure + cell[k]->first, rgb);
                        for (guint i = 0; i < 3; i++)
                          sum[i] += w * ck[i];
                      }
                    memcpy (c, sum, sizeof c);
                  }
                for (guint i = 0; i < 3; i++)
                  acc[ox * 3 + i] += CLAMP (c[i], 0.0f, 255.0f);
              }
        }
      const gfloat norm = 1.0f / (sx * sy);
      for (gsize x = 0; x < (gsize) out_width * 3; x++)
        out[(gsize) oy * out_width * 3 + x] = (guint8) CLAMP (floorf (acc[x] * norm + 0.5f), 0, 255);
    }
  return out;
}

guint8 *
sdcl_image_upscale (const guint8 *rgb, guint width, guint height, guint out_width,
                    guint out_height)
{
  g_return_val_if_fail (rgb && width > 0 && height > 0 && out_width > 0 && out_height > 0, NULL);
  gsize bytes;
  if (!g_size_checked_mul (&bytes, out_width, out_height)
      || !g_size_checked_mul (&bytes, bytes, 3)
      || (guint64) width * height > G_MAXUINT32)   /* pixel indices are 32-bit */
    return NULL;
  if (out_width == width && out_height == height)
    return g_memdup2 (rgb, bytes);
  /* the axes that shrink are box-filtered first, then the rest enlarged */
  const guint mid_w = MIN (width, out_width), mid_h = MIN (height, out_height);
  g_autofree guint8 *mid = mid_w == width && mid_h == height
                             ? NULL : shrink (rgb, width, height, mid_w, mid_h);
  if (mid_w == out_width && mid_h == out_height)
    return g_steal_pointer (&mid);
  return enlarge (mid ? mid : rgb, mid_w, mid_h, out_width, out_height);
}
