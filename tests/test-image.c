/* test-image.c — engine/image.c: PNG reading as RGB and as one grey channel
 * over every PNG kind (grey, grey+alpha, RGB, RGBA, palette with tRNS, 1 to
 * 16 bits, interlaced), refusal of broken files (not a PNG, truncated at
 * every length, bad CRCs, absurd sizes, seeded byte flips: a GError each,
 * never a crash), writing (text chunks, permissions, bad folders), and
 * resizing: sdcl_image_upscale against a plain bicubic on antialiased
 * shapes (edge width, colours, area), gradients, odd sizes, shrinking.
 * Needs no OpenCL device. Test PNGs are made here with libpng directly.
 */
#include <math.h>
#include <png.h>
#include <zlib.h>
#include <string.h>
#include <sys/stat.h>
#include <gio/gio.h>
#include <glib/gstdio.h>

#include "sdcl.h"
#include "testpng.h"

static gchar *scratch;

static gchar *
scratch_path (const gchar *name)
{
  return g_build_filename (scratch, name, NULL);
}

/* Writes `png` as NAME, reads it with both readers, and checks them against
 * the expected RGB and grey bytes. */
static void
check_reads (const gchar *name, const SdclTestPng *png, const guint8 *want_rgb,
             const guint8 *want_gray)
{
  g_autofree gchar *path = scratch_path (name);
  sdcl_test_png_write (path, png);
  g_autoptr (GError) error = NULL;
  guint w = 0, h = 0;
  const gsize n = (gsize) png->width * png->height;
  g_autofree guint8 *rgb = sdcl_png_read_rgb (path, &w, &h, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (w, ==, png->width);
  g_assert_cmpuint (h, ==, png->height);
  g_assert_cmpmem (rgb, n * 3, want_rgb, n * 3);
  g_autofree guint8 *gray = sdcl_png_read_gray (path, &w, &h, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (w, ==, png->width);
  g_assert_cmpuint (h, ==, png->height);
  g_assert_cmpmem (gray, n, want_gray, n);
}

/* ---- every PNG kind ------------------------------------------------------ */

static void
test_gray8 (void)
{
  const guint8 px[] = { 0, 1, 127, 128, 254, 255 };
  const guint8 rgb[] = { 0, 0, 0, 1, 1, 1, 127, 127, 127, 128, 128, 128, 254, 254, 254,
                         255, 255, 255 };
  SdclTestPng png = { 3, 2, 8, PNG_COLOR_TYPE_GRAY, FALSE, px };
  check_reads ("gray8.png", &png, rgb, px);
}

/* Pure colours and a grey through Pillow's convert("L") weights: Rec. 601,
 * (19595 R + 38470 G + 7471 B + 32768) >> 16. The figures are Pillow's. */
static const guint8 colour_px[] = { 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0,
                                    10, 200, 30 };
static const guint8 colour_gray[] = { 76, 150, 29, 255, 0, 124 };

static void
test_rgb8 (void)
{
  SdclTestPng png = { 3, 2, 8, PNG_COLOR_TYPE_RGB, FALSE, colour_px };
  check_reads ("rgb8.png", &png, colour_px, colour_gray);
}

/* Alpha is dropped, not composited: a transparent white pixel is white. */
static void
test_rgba8 (void)
{
  guint8 px[6 * 4];
  for (guint i = 0; i < 6; i++)
    {
      memcpy (px + 4 * i, colour_px + 3 * i, 3);
      px[4 * i + 3] = (guint8) (i * 50);
    }
  SdclTestPng png = { 6, 1, 8, PNG_COLOR_TYPE_RGB_ALPHA, FALSE, px };
  check_reads ("rgba8.png", &png, colour_px, colour_gray);
}

static void
test_gray_alpha8 (void)
{
  const guint8 px[] = { 0, 255, 200, 0, 255, 17 };
  const guint8 gray[] = { 0, 200, 255 };
  const guint8 rgb[] = { 0, 0, 0, 200, 200, 200, 255, 255, 255 };
  SdclTestPng png = { 1, 3, 8, PNG_COLOR_TYPE_GRAY_ALPHA, FALSE, px };
  check_reads ("gray-alpha8.png", &png, rgb, gray);
}

/* 16 bits are scaled with rounding, v * 255 / 65535 (libpng's
 * png_set_scale_16): 257·k is k exactly, 33000 is 128.4 -> 128,
 * 25829 is 100.502 -> 101. */
static void
test_gray16 (void)
{
  const guint16 v[] = { 0, 65535, 25700, 33000, 25829, 257 };
  guint8 px[12];
  for (guint i = 0; i < 6; i++)
    {
      px[2 * i] = v[i] >> 8;
      px[2 * i + 1] = v[i] & 0xff;
    }
  const guint8 gray[] = { 0, 255, 100, 128, 101, 1 };
  guint8 rgb[18];
  for (guint i = 0; i < 18; i++)
    rgb[i] = gray[i / 3];
  SdclTestPng png = { 2, 3, 16, PNG_COLOR_TYPE_GRAY, FALSE, px };
  check_reads ("gray16.png", &png, rgb, gray);
}

static void
test_rgb16 (void)
{
  guint8 px[6 * 6];
  for (guint i = 0; i < 18; i++)
    {
      const guint16 v = colour_px[i] * 257;   /* exact through the 8-bit reduction */
      px[2 * i] = v >> 8;
      px[2 * i + 1] = v & 0xff;
    }
  SdclTestPng png = { 6, 1, 16, PNG_COLOR_TYPE_RGB, FALSE, px };
  check_reads ("rgb16.png", &png, colour_px, colour_gray);
}

/* A 2-bit palette image with tRNS (ignored like alpha): indices
 * 0 1 2 3 / 3 2 1 0. */
static void
test_palette (void)
{
  const guint8 palette[] = { 255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 200, 30 };
  const guint8 trans[] = { 0, 128 };
  const guint8 px[] = { 0x1b, 0xe4 };   /* 00 01 10 11, 11 10 01 00 */
  const guint order[] = { 0, 1, 2, 3, 3, 2, 1, 0 };
  const guint8 lum[] = { 76, 150, 29, 124 };
  guint8 rgb[24], gray[8];
  for (guint i = 0; i < 8; i++)
    {
      memcpy (rgb + 3 * i, palette + 3 * order[i], 3);
      gray[i] = lum[order[i]];
    }
  SdclTestPng png = { 4, 2, 2, PNG_COLOR_TYPE_PALETTE, FALSE, px, palette, 4, trans, 2 };
  check_reads ("palette2.png", &png, rgb, gray);
}

/* 1-bit grey (a typical mask) expands 0/1 to 0/255; 5 pixels a row. */
static void
test_gray1 (void)
{
  const guint8 px[] = { 0xa8, 0x50 };   /* 10101, 01010 */
  const guint8 gray[] = { 255, 0, 255, 0, 255, 0, 255, 0, 255, 0 };
  guint8 rgb[30];
  for (guint i = 0; i < 30; i++)
    rgb[i] = gray[i / 3];
  SdclTestPng png = { 5, 2, 1, PNG_COLOR_TYPE_GRAY, FALSE, px };
  check_reads ("gray1.png", &png, rgb, gray);
}

/* Adam7: every pass must land in its place (a reader calling png_read_row
 * once per row without interlace handling gets only the first pass). */
static void
test_interlaced (void)
{
  enum { W = 13, H = 11 };
  guint8 px[W * H * 3], gray[W * H];
  for (guint i = 0; i < W * H * 3; i++)
    px[i] = (guint8) (i * 7 + 3);
  for (guint i = 0; i < W * H; i++)
    gray[i] = (guint8) ((px[3 * i] * 19595u + px[3 * i + 1] * 38470u + px[3 * i + 2] * 7471u
                         + 0x8000u) >> 16);
  SdclTestPng png = { W, H, 8, PNG_COLOR_TYPE_RGB, TRUE, px };
  check_reads ("interlaced.png", &png, px, gray);
}

/* ---- broken files -------------------------------------------------------- */

/* A small valid RGB PNG to break. */
static GBytes *
sample_bytes (void)
{
  static guint8 px[16 * 8 * 3];
  for (guint i = 0; i < sizeof px; i++)
    px[i] = (guint8) (i * 31 + i / 7);
  SdclTestPng png = { 16, 8, 8, PNG_COLOR_TYPE_RGB, FALSE, px };
  return sdcl_test_png_bytes (&png);
}

/* Reads `data` from a file with both readers; TRUE if both refused it with
 * G_IO_ERROR_INVALID_DATA and a message naming the file, FALSE if both
 * read it. Anything else fails the test. */
static gboolean
both_refuse (const guint8 *data, gsize n)
{
  g_autofree gchar *path = scratch_path ("broken.png");
  g_autoptr (GError) error = NULL;
  g_file_set_contents (path, (const gchar *) data, (gssize) n, &error);
  g_assert_no_error (error);
  guint w = 0, h = 0;
  g_autofree guint8 *rgb = sdcl_png_read_rgb (path, &w, &h, &error);
  const gboolean rgb_refused = rgb == NULL;
  if (rgb_refused)
    {
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
      g_assert_nonnull (strstr (error->message, path));
      g_clear_error (&error);
    }
  g_autofree guint8 *gray = sdcl_png_read_gray (path, &w, &h, &error);
  g_assert_cmpint (gray == NULL, ==, rgb_refused);
  if (gray == NULL)
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  return rgb_refused;
}

static void
test_not_png (void)
{
  const gchar *text = "this is a text file, not an image\n";
  g_assert_true (both_refuse ((const guint8 *) text, strlen (text)));
  g_assert_true (both_refuse ((const guint8 *) "", 0));
  g_autofree gchar *path = scratch_path ("text.png");
  g_file_set_contents (path, text, -1, NULL);
  g_autoptr (GError) error = NULL;
  guint w, h;
  g_assert_null (sdcl_png_read_gray (path, &w, &h, &error));
  g_assert_nonnull (strstr (error->message, "is not a PNG file"));
}

static void
test_missing_file (void)
{
  g_autofree gchar *path = scratch_path ("absent.png");
  g_autoptr (GError) error = NULL;
  guint w, h;
  g_assert_null (sdcl_png_read_rgb (path, &w, &h, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (sdcl_png_read_gray (path, &w, &h, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
}

/* Every prefix of a valid file is refused: a PNG is whole up to IEND. */
static void
test_truncated (void)
{
  g_autoptr (GBytes) bytes = sample_bytes ();
  gsize n;
  const guint8 *data = g_bytes_get_data (bytes, &n);
  g_assert_false (both_refuse (data, n));
  for (gsize len = 0; len < n; len++)
    if (!both_refuse (data, len))
      g_error ("a PNG cut to %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT " bytes was read", len, n);
}

/* A flipped byte inside IDAT's data breaks its CRC; libpng refuses a bad
 * CRC on a critical chunk. */
static void
test_bad_crc (void)
{
  g_autoptr (GBytes) bytes = sample_bytes ();
  gsize n;
  const guint8 *clean = g_bytes_get_data (bytes, &n);
  g_autofree guint8 *data = g_memdup2 (clean, n);
  const guint8 *idat = memmem (data, n, "IDAT", 4);
  g_assert_nonnull (idat);
  data[idat - data + 6] ^= 0x40;
  g_assert_true (both_refuse (data, n));
}

static void
put_be32 (guint8 *p, guint32 v)
{
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}

/* An IHDR that claims 100000 x 100000 (with a correct CRC) is refused
 * before any pixel memory is asked for. */
static void
test_huge_header (void)
{
  g_autoptr (GBytes) bytes = sample_bytes ();
  gsize n;
  const guint8 *clean = g_bytes_get_data (bytes, &n);
  g_autofree guint8 *data = g_memdup2 (clean, n);
  guint8 *ihdr = data + 8 + 4;   /* chunk type, then 13 data bytes, then CRC */
  g_assert_cmpmem (ihdr, 4, "IHDR", 4);
  put_be32 (ihdr + 4, 100000);
  put_be32 (ihdr + 8, 100000);
  put_be32 (ihdr + 4 + 13, (guint32) crc32 (0, ihdr, 4 + 13));
  g_assert_true (both_refuse (data, n));
}

/* Seeded single- and multi-byte corruptions: each is refused or read, and
 * nothing crashes (run under ASan by make test-asan). */
static void
test_byte_flips (void)
{
  g_autoptr (GBytes) bytes = sample_bytes ();
  gsize n;
  const guint8 *clean = g_bytes_get_data (bytes, &n);
  g_autoptr (GRand) rand = g_rand_new_with_seed (20240611);
  guint refused = 0;
  g_autofree guint8 *data = g_malloc (n);
  for (guint round = 0; round < 300; round++)
    {
      memcpy (data, clean, n);
      const guint flips = 1 + round % 4;
      for (guint k = 0; k < flips; k++)
        data[g_rand_int_range (rand, 8, (gint32) n)] = (guint8) g_rand_int (rand);
      refused += both_refuse (data, n);
    }
  g_assert_cmpuint (refused, >, 100);
}

/* ---- writing ------------------------------------------------------------- */

/* Text goes in as given: ASCII in tEXt, UTF-8 in iTXt; the pixels and the
 * size come back; the file gets 0666 less the umask like any new file (a
 * temp file's 0600 would hide the result from other users). */
static void
test_write_roundtrip (void)
{
  g_autofree gchar *path = scratch_path ("written.png");
  guint8 px[5 * 3 * 4];
  for (guint i = 0; i < sizeof px; i++)
    px[i] = (guint8) (i * 13);
  const gchar *text[] = { "parameters", "a cat\nSteps: 3, Seed: 7, Size: 5x3",
                          "Title", "ネコ, café", NULL };
  const mode_t old = umask (022);
  g_autoptr (GError) error = NULL;
  g_assert_true (sdcl_png_write (path, 5, 3, 4, px, text, &error));
  umask (old);
  g_assert_no_error (error);
  GStatBuf st;
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0644);
  guint w, h, type;
  g_autoptr (GHashTable) chunks = NULL;
  g_assert_true (sdcl_test_png_info (path, &w, &h, &type, &chunks, &error));
  g_assert_cmpuint (w, ==, 5);
  g_assert_cmpuint (h, ==, 3);
  g_assert_cmpuint (type, ==, PNG_COLOR_TYPE_RGB_ALPHA);
  g_assert_cmpstr (g_hash_table_lookup (chunks, "parameters"), ==, text[1]);
  g_assert_cmpstr (g_hash_table_lookup (chunks, "Title"), ==, text[3]);
  g_autofree guint8 *rgb = sdcl_png_read_rgb (path, &w, &h, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < 15; i++)
    g_assert_cmpmem (rgb + 3 * i, 3, px + 4 * i, 3);
}

/* A folder that does not exist: an error that names the file, and no
 * temporary file anywhere. */
static void
test_write_errors (void)
{
  g_autofree gchar *path = g_build_filename (scratch, "no-such-folder", "x.png", NULL);
  const guint8 px[3] = { 1, 2, 3 };
  g_autoptr (GError) error = NULL;
  g_assert_false (sdcl_png_write (path, 1, 1, 3, px, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "x.png"));
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
}

/* ---- resizing ------------------------------------------------------------ */

static const guint8 backdrop[3] = { 245, 245, 245 };   /* sdcl-shapes' white */
static const guint8 ink[3] = { 220, 30, 35 };          /* ... and red */

/* A disc of `ink` on `backdrop`, or on a horizontal gradient from `left`
 * to `right` when those are given, antialiased as sdcl-shapes' training
 * data is: 4x4 samples per pixel. *coverage gets the disc's share of the
 * image. */
static guint8 *
draw_disc (guint size, gdouble cx, gdouble cy, gdouble r, const guint8 *left,
           const guint8 *right, gdouble *coverage)
{
  guint8 *px = g_new (guint8, (gsize) size * size * 3);
  gdouble total = 0;
  for (guint y = 0; y < size; y++)
    for (guint x = 0; x < size; x++)
      {
        guint in = 0;
        for (guint j = 0; j < 4; j++)
          for (guint i = 0; i < 4; i++)
            {
              const gdouble dx = x + (i + 0.5) / 4 - cx, dy = y + (j + 0.5) / 4 - cy;
              in += dx * dx + dy * dy < r * r;
            }
        const gdouble a = in / 16.0, g = (x + 0.5) / size;
        total += a;
        for (guint c = 0; c < 3; c++)
          {
            const gdouble bg = left ? left[c] * (1 - g) + right[c] * g : backdrop[c];
            px[((gsize) y * size + x) * 3 + c] = (guint8) floor (bg * (1 - a) + ink[c] * a + 0.5);
          }
      }
  if (coverage)
    *coverage = total / ((gdouble) size * size);
  return px;
}

static gdouble
catmull_rom (gdouble x)
{
  x = fabs (x);
  return x < 1 ? (1.5 * x - 2.5) * x * x + 1 : x < 2 ? ((-0.5 * x + 2.5) * x - 4) * x + 2 : 0;
}

/* The plain bicubic enlargement sdcl_image_upscale is measured against:
 * Catmull-Rom at each output pixel's centre, borders clamped. */
static guint8 *
bicubic (const guint8 *src, guint w, guint h, guint out_w, guint out_h)
{
  guint8 *out = g_new (guint8, (gsize) out_w * out_h * 3);
  for (guint y = 0; y < out_h; y++)
    for (guint x = 0; x < out_w; x++)
      {
        const gdouble u = (x + 0.5) * w / out_w - 0.5, v = (y + 0.5) * h / out_h - 0.5;
        const gint iu = (gint) floor (u), iv = (gint) floor (v);
        for (guint c = 0; c < 3; c++)
          {
            gdouble acc = 0;
            for (gint j = -1; j <= 2; j++)
              for (gint i = -1; i <= 2; i++)
                {
                  const gint sx = CLAMP (iu + i, 0, (gint) w - 1), sy = CLAMP (iv + j, 0, (gint) h - 1);
                  acc += catmull_rom (u - (iu + i)) * catmull_rom (v - (iv + j))
                         * src[((gsize) sy * w + sx) * 3 + c];
                }
            out[((gsize) y * out_w + x) * 3 + c] = (guint8) CLAMP (floor (acc + 0.5), 0, 255);
          }
      }
  return out;
}

/* How far p is from backdrop towards ink: 0 .. 1 */
static gdouble
inkiness (const guint8 *p)
{
  gdouble dot = 0, len2 = 0;
  for (guint c = 0; c < 3; c++)
    {
      dot += ((gdouble) p[c] - backdrop[c]) * ((gdouble) ink[c] - backdrop[c]);
      len2 += ((gdouble) ink[c] - backdrop[c]) * ((gdouble) ink[c] - backdrop[c]);
    }
  return dot / len2;
}

/* Pixels strictly between 10 % and 90 % of the way from backdrop to ink
 * along a line of n pixels `stride` bytes apart, before and after its
 * middle (the disc's two edges). */
static void
edge_widths (const guint8 *line, guint n, gsize stride, guint *before, guint *after)
{
  *before = *after = 0;
  for (guint i = 0; i < n; i++)
    {
      const gdouble t = inkiness (line + i * stride);
      if (t > 0.1 && t < 0.9)
        (*(i < n / 2 ? before : after))++;
    }
}

static gdouble
max_distance_to (const guint8 *p, const guint8 *a)
{
  gdouble d = 0;
  for (guint c = 0; c < 3; c++)
    d = MAX (d, fabs ((gdouble) p[c] - a[c]));
  return d;
}

/* A 64x64 disc at 512x512: edges at most 2 px wide where a bicubic
 * enlargement's are 5 or more, and nearly every pixel one of the two
 * colours. */
static void
test_upscale_disc_edges (void)
{
  enum { S = 64, O = 512 };
  g_autofree guint8 *src = draw_disc (S, 31.7, 32.3, 20.35, NULL, NULL, NULL);
  g_autofree guint8 *ours = sdcl_image_upscale (src, S, S, O, O);
  g_autofree guint8 *plain = bicubic (src, S, S, O, O);
  g_assert_nonnull (ours);

  /* the centre is at (253.6, 258.4) in the output */
  const guint8 *row = ours + (gsize) 258 * O * 3, *col = ours + 254 * 3;
  guint left, right, top, bottom;
  edge_widths (row, O, 3, &left, &right);
  edge_widths (col, O, (gsize) O * 3, &top, &bottom);
  g_test_message ("sdcl_image_upscale edge widths: %u, %u across, %u, %u down", left, right,
                  top, bottom);
  g_assert_cmpuint (left, <=, 2);
  g_assert_cmpuint (right, <=, 2);
  g_assert_cmpuint (top, <=, 2);
  g_assert_cmpuint (bottom, <=, 2);

  guint plain_left, plain_right;
  edge_widths (plain + (gsize) 258 * O * 3, O, 3, &plain_left, &plain_right);
  g_test_message ("bicubic edge widths: %u, %u", plain_left, plain_right);
  g_assert_cmpuint (plain_left, >=, 5);
  g_assert_cmpuint (plain_right, >=, 5);

  /* antialiased, not aliased: the pixels between 10 % and 90 % are about
     one per pixel of the circumference, 2 pi r = 1023 */
  guint between = 0;
  for (gsize i = 0; i < (gsize) O * O; i++)
    between += inkiness (ours + 3 * i) > 0.1 && inkiness (ours + 3 * i) < 0.9;
  g_test_message ("pixels between 10 %% and 90 %%: %u", between);
  g_assert_cmpuint (between, >=, 1023 / 3);
  g_assert_cmpuint (between, <=, 2 * 1023);

  guint two_coloured = 0, plain_two_coloured = 0;
  for (gsize i = 0; i < (gsize) O * O; i++)
    {
      two_coloured += MIN (max_distance_to (ours + 3 * i, backdrop),
                           max_distance_to (ours + 3 * i, ink)) <= 8;
      plain_two_coloured += MIN (max_distance_to (plain + 3 * i, backdrop),
                                 max_distance_to (plain + 3 * i, ink)) <= 8;
    }
  g_test_message ("within 8 of one of the two colours: %.2f %% (bicubic %.2f %%)",
                  100.0 * two_coloured / (O * O), 100.0 * plain_two_coloured / (O * O));
  g_assert_cmpfloat ((gdouble) two_coloured / (O * O), >=, 0.97);
  g_assert_cmpfloat ((gdouble) plain_two_coloured / (O * O), <, 0.97);
}

/* The disc keeps its area: the share of ink-coloured pixels after
 * enlarging is the source's coverage within 2 %. */
static void
test_upscale_disc_area (void)
{
  const struct { guint size, out; gdouble cx, cy, r; } cases[] = {
    { 64, 512, 31.7, 32.3, 20.35 },
    { 64, 512, 20.2, 40.9, 6.6 },            /* a small one */
    { 48, 200, 23.1, 24.6, 13.3 },           /* a factor of 4.17 */
  };
  for (guint k = 0; k < G_N_ELEMENTS (cases); k++)
    {
      const guint S = cases[k].size, O = cases[k].out;
      gdouble coverage;
      g_autofree guint8 *src = draw_disc (S, cases[k].cx, cases[k].cy, cases[k].r, NULL, NULL,
                                          &coverage);
      g_autofree guint8 *out = sdcl_image_upscale (src, S, S, O, O);
      guint inked = 0;
      for (gsize i = 0; i < (gsize) O * O; i++)
        inked += inkiness (out + 3 * i) >= 0.5;
      const gdouble share = (gdouble) inked / ((gdouble) O * O);
      g_test_message ("disc r %.2f at %u -> %u: coverage %.5f, ink %.5f", cases[k].r, S, O,
                      coverage, share);
      g_assert_cmpfloat (fabs (share - coverage), <=, 0.02 * coverage);
    }
}

/* On a gradient the edges are as sharp, and away from the disc the
 * background is what it is without the disc: no bands, no halo. */
static void
test_upscale_disc_on_gradient (void)
{
  enum { S = 64, O = 512 };
  static const guint8 left[3] = { 40, 215, 225 }, right[3] = { 130, 45, 175 };
  g_autofree guint8 *src = draw_disc (S, 30.4, 33.2, 14.8, left, right, NULL);
  g_autofree guint8 *bare = draw_disc (S, 30.4, 33.2, 0, left, right, NULL);
  g_autofree guint8 *ours = sdcl_image_upscale (src, S, S, O, O);
  g_autofree guint8 *ours_bare = sdcl_image_upscale (bare, S, S, O, O);

  /* along the row through the centre: the pixels that are neither the
     background there nor the ink */
  guint soft = 0;
  const guint y = 269;
  for (guint x = 0; x < O; x++)
    {
      const guint8 *p = ours + ((gsize) y * O + x) * 3, *b = ours_bare + ((gsize) y * O + x) * 3;
      soft += max_distance_to (p, b) > 0.1 * 255 && max_distance_to (p, ink) > 0.1 * 255;
    }
  g_test_message ("edge pixels on a gradient: %u", soft);
  g_assert_cmpuint (soft, <=, 4);

  gdouble worst = 0;
  for (guint y2 = 0; y2 < O; y2++)
    for (guint x = 0; x < O; x++)
      {
        const gdouble dx = (x + 0.5) / 8 - 30.4, dy = (y2 + 0.5) / 8 - 33.2;
        if (sqrt (dx * dx + dy * dy) < 14.8 + 2)
          continue;                          /* the disc and two source pixels around it */
        const gsize i = ((gsize) y2 * O + x) * 3;
        worst = MAX (worst, max_distance_to (ours + i, ours_bare + i));
      }
  g_test_message ("background off the disc differs by at most %.0f", worst);
  g_assert_cmpfloat (worst, <=, 2);
}

/* Blue to black over 64 pixels: monotone, no step larger than the
 * source's + 2, the same on every row. */
static void
test_upscale_gradient (void)
{
  enum { W = 64, H = 8, OW = 512, OH = 64 };
  guint8 src[W * H * 3];
  for (guint y = 0; y < H; y++)
    for (guint x = 0; x < W; x++)
      {
        guint8 *p = src + (y * W + x) * 3;
        p[0] = p[1] = 0;
        p[2] = (guint8) (255 - x * 4);
      }
  g_autofree guint8 *out = sdcl_image_upscale (src, W, H, OW, OH);
  for (guint y = 0; y < OH; y++)
    {
      const guint8 *row = out + (gsize) y * OW * 3;
      g_assert_cmpmem (row, OW * 3, out, OW * 3);
      for (guint x = 0; x < OW; x++)
        {
          g_assert_cmpuint (row[3 * x], ==, 0);
          g_assert_cmpuint (row[3 * x + 1], ==, 0);
          if (x > 0)
            {
              g_assert_cmpuint (row[3 * x + 2], <=, row[3 * (x - 1) + 2]);
              g_assert_cmpuint (row[3 * (x - 1) + 2] - row[3 * x + 2], <=, 4 + 2);
            }
        }
    }
  g_assert_cmpuint (out[2], ==, 255);
  g_assert_cmpuint (out[3 * (OW - 1) + 2], ==, 3);
}

/* A picture as the shipped model draws it (tests/fixtures/upscale-soft-
 * star.png: "a purple star at the top on a yellow background", seed 5,
 * 64x64): soft edges, no pure colours inside the shape. Enlarged 8x, a
 * sample's snapping depends on the pure colours around the source pixels
 * it lies between (its cell); had each sample used its own cell's alone,
 * every change of cell, on the output rows and columns 8k + 4 that pass
 * through source pixel centres, would be a seam: blocks of 8x8 pixels.
 * The mean colour step across those lines must be no larger than across
 * the lines of the other seven phases (within 15 % of their median). */
static void
test_upscale_no_seams (void)
{
  enum { S = 64, O = 512, F = O / S };
  g_autoptr (GError) error = NULL;
  g_autofree gchar *path = g_build_filename (SDCL_SOURCE_DIR, "tests", "fixtures",
                                             "upscale-soft-star.png", NULL);
  guint w, h;
  g_autofree guint8 *src = sdcl_png_read_rgb (path, &w, &h, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (w, ==, S);
  g_assert_cmpuint (h, ==, S);
  g_autofree guint8 *out = sdcl_image_upscale (src, S, S, O, O);
  for (guint axis = 0; axis < 2; axis++)
    {
      gdouble phase[F] = { 0 };
      for (guint a = 1; a < O; a++)       /* the line between a - 1 and a */
        for (guint b = 0; b < O; b++)
          {
            const guint8 *p = out + 3 * (axis ? (gsize) a * O + b : (gsize) b * O + a);
            const guint8 *q = p - 3 * (axis ? O : 1);
            gdouble d = 0;
            for (guint i = 0; i < 3; i++)
              d += (gdouble) (p[i] - q[i]) * (p[i] - q[i]);
            phase[a % F] += sqrt (d) / ((gdouble) O * (a % F ? O / F : O / F - 1));
          }
      gdouble sorted[F];
      memcpy (sorted, phase, sizeof sorted);
      for (guint i = 0; i < F; i++)
        for (guint j = i + 1; j < F; j++)
          if (sorted[j] < sorted[i])
            {
              const gdouble t = sorted[i];
              sorted[i] = sorted[j];
              sorted[j] = t;
            }
      const gdouble median = (sorted[F / 2 - 1] + sorted[F / 2]) / 2;
      g_test_message ("%s: mean step across lines 8k + 4 %.3f, median of the phases %.3f",
                      axis ? "rows" : "columns", phase[F / 2], median);
      g_assert_cmpfloat (phase[F / 2], <=, 1.15 * median);
    }
}

static void
test_upscale_constant_and_copy (void)
{
  guint8 flat[37 * 23 * 3];
  for (guint i = 0; i < 37 * 23; i++)
    memcpy (flat + 3 * i, (const guint8[]) { 12, 200, 77 }, 3);
  g_autofree guint8 *big = sdcl_image_upscale (flat, 37, 23, 300, 101);
  for (guint i = 0; i < 300 * 101; i++)
    g_assert_cmpmem (big + 3 * i, 3, flat, 3);
  g_autofree guint8 *small = sdcl_image_upscale (flat, 37, 23, 10, 7);
  for (guint i = 0; i < 10 * 7; i++)
    g_assert_cmpmem (small + 3 * i, 3, flat, 3);

  /* the same size: an exact copy, in a buffer of its own */
  g_autofree guint8 *noise = draw_disc (50, 20, 20, 9, NULL, NULL, NULL);
  for (guint i = 0; i < 50 * 50 * 3; i += 7)
    noise[i] = (guint8) (i * 2654435761u >> 24);
  g_autofree guint8 *copy = sdcl_image_upscale (noise, 50, 50, 50, 50);
  g_assert_true (copy != noise);
  g_assert_cmpmem (copy, 50 * 50 * 3, noise, 50 * 50 * 3);
}

/* Tiny and lopsided sizes: no read outside the source (ASan in make
 * test-asan), and the colours stay where they were. */
static void
test_upscale_odd_sizes (void)
{
  const guint8 one[3] = { 9, 99, 199 };
  g_autofree guint8 *seven = sdcl_image_upscale (one, 1, 1, 7, 5);
  for (guint i = 0; i < 7 * 5; i++)
    g_assert_cmpmem (seven + 3 * i, 3, one, 3);

  const guint8 two[6] = { 0, 0, 0, 255, 255, 255 };
  g_autofree guint8 *wide = sdcl_image_upscale (two, 2, 1, 9, 3);
  for (guint y = 0; y < 3; y++)
    {
      g_assert_cmpuint (wide[(y * 9) * 3], <, 40);            /* black stays on the left */
      g_assert_cmpuint (wide[(y * 9 + 8) * 3], >, 215);       /* white on the right */
    }

  /* wider and lower at once, and the other way round: the mean colour
     survives (box-shrunk on one axis, enlarged on the other), and every
     pixel stays between the two colours, down to a sliver */
  g_autofree guint8 *src = draw_disc (64, 31.7, 32.3, 20.35, NULL, NULL, NULL);
  const guint sizes[][2] = { { 100, 37 }, { 37, 100 }, { 65, 64 }, { 3, 200 }, { 200, 3 } };
  gdouble mean_in = 0;
  for (guint i = 0; i < 64 * 64; i++)
    mean_in += inkiness (src + 3 * i) / (64 * 64);
  for (guint k = 0; k < G_N_ELEMENTS (sizes); k++)
    {
      const guint w = sizes[k][0], h = sizes[k][1];
      g_autofree guint8 *out = sdcl_image_upscale (src, 64, 64, w, h);
      gdouble mean_out = 0;
      for (guint i = 0; i < w * h; i++)
        {
          const gdouble t = inkiness (out + 3 * i);
          g_assert_cmpfloat (t, >=, -0.03);
          g_assert_cmpfloat (t, <=, 1.03);
          mean_out += t / (w * h);
        }
      g_test_message ("64x64 -> %ux%u: ink %.4f -> %.4f", w, h, mean_in, mean_out);
      if (w > 3 && h > 3)
        g_assert_cmpfloat (fabs (mean_out - mean_in), <, 0.01);
    }
}

/* Shrinking is an area average: a checkerboard of 2x2 blocks halved is a
 * checkerboard of pixels, quartered the mean; a checkerboard of pixels
 * halved is the mean everywhere. */
static void
test_downscale_average (void)
{
  enum { S = 128 };
  const guint8 dark[3] = { 10, 60, 200 }, light[3] = { 250, 100, 0 }, mean[3] = { 130, 80, 100 };
  g_autofree guint8 *blocks = g_new (guint8, S * S * 3);
  g_autofree guint8 *pixels = g_new (guint8, S * S * 3);
  for (guint y = 0; y < S; y++)
    for (guint x = 0; x < S; x++)
      {
        memcpy (blocks + (y * S + x) * 3, (x / 2 + y / 2) % 2 ? light : dark, 3);
        memcpy (pixels + (y * S + x) * 3, (x + y) % 2 ? light : dark, 3);
      }
  g_autofree guint8 *halved = sdcl_image_upscale (blocks, S, S, S / 2, S / 2);
  for (guint y = 0; y < S / 2; y++)
    for (guint x = 0; x < S / 2; x++)
      g_assert_cmpmem (halved + (y * S / 2 + x) * 3, 3, (x + y) % 2 ? light : dark, 3);
  g_autofree guint8 *quartered = sdcl_image_upscale (blocks, S, S, S / 4, S / 4);
  for (guint i = 0; i < S / 4 * S / 4; i++)
    g_assert_cmpmem (quartered + 3 * i, 3, mean, 3);
  g_autofree guint8 *grey = sdcl_image_upscale (pixels, S, S, S / 2, S / 2);
  for (guint i = 0; i < S / 2 * S / 2; i++)
    g_assert_cmpmem (grey + 3 * i, 3, mean, 3);
}

/* ---- main ------------------------------------------------------------------ */

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  scratch = sdcl_test_scratch_new ("sdcl-image-XXXXXX");

  g_test_add_func ("/image/read/gray8", test_gray8);
  g_test_add_func ("/image/read/gray1", test_gray1);
  g_test_add_func ("/image/read/gray16", test_gray16);
  g_test_add_func ("/image/read/gray-alpha8", test_gray_alpha8);
  g_test_add_func ("/image/read/rgb8", test_rgb8);
  g_test_add_func ("/image/read/rgba8", test_rgba8);
  g_test_add_func ("/image/read/rgb16", test_rgb16);
  g_test_add_func ("/image/read/palette-trns", test_palette);
  g_test_add_func ("/image/read/interlaced", test_interlaced);
  g_test_add_func ("/image/broken/not-png", test_not_png);
  g_test_add_func ("/image/broken/missing-file", test_missing_file);
  g_test_add_func ("/image/broken/truncated-every-length", test_truncated);
  g_test_add_func ("/image/broken/bad-crc", test_bad_crc);
  g_test_add_func ("/image/broken/huge-header", test_huge_header);
  g_test_add_func ("/image/broken/byte-flips", test_byte_flips);
  g_test_add_func ("/image/write/roundtrip", test_write_roundtrip);
  g_test_add_func ("/image/write/missing-folder", test_write_errors);
  g_test_add_func ("/image/upscale/disc-edges", test_upscale_disc_edges);
  g_test_add_func ("/image/upscale/disc-area", test_upscale_disc_area);
  g_test_add_func ("/image/upscale/disc-on-gradient", test_upscale_disc_on_gradient);
  g_test_add_func ("/image/upscale/gradient", test_upscale_gradient);
  g_test_add_func ("/image/upscale/no-seams", test_upscale_no_seams);
  g_test_add_func ("/image/upscale/constant-and-copy", test_upscale_constant_and_copy);
  g_test_add_func ("/image/upscale/odd-sizes", test_upscale_odd_sizes);
  g_test_add_func ("/image/downscale/average", test_downscale_average);

  int status = g_test_run ();
  sdcl_test_scratch_remove (scratch);
  g_free (scratch);
  return status;
}
