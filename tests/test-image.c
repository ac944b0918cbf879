/* test-image.c — engine/image.c: PNG reading as RGB and as one grey channel
 * over every PNG kind (grey, grey+alpha, RGB, RGBA, palette with tRNS, 1 to
 * 16 bits, interlaced), refusal of broken files (not a PNG, truncated at
 * every length, bad CRCs, absurd sizes, seeded byte flips: a GError each,
 * never a crash), and writing (text chunks, permissions, bad folders).
 * Needs no OpenCL device. Test PNGs are made here with libpng directly.
 */
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

  int status = g_test_run ();
  sdcl_test_scratch_remove (scratch);
  g_free (scratch);
  return status;
}
