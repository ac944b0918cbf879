/* image.c — PNG files through libpng: writing (atomically, with text
 * chunks) and reading any PNG as 8-bit RGB or as one 8-bit channel (masks).
 * Reading never trusts the file: sizes are capped before allocation and
 * every libpng error (bad CRC, truncation) becomes a GError.
 */
#include <png.h>
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
