/* image.c — PNG files through libpng: writing (atomically, with text
 * chunks) and reading as 8-bit RGB.
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

/* libpng copies the chunks, so they live only for this call. */
static void
set_text (png_structp png, png_infop info, const gchar * const *text)
{
  const guint n = text ? g_strv_length ((gchar **) text) / 2 : 0;
  if (n == 0)
    return;
  g_autofree png_textp chunks = g_new0 (png_text, n);
  for (guint i = 0; i < n; i++)
    {
      chunks[i].compression = PNG_TEXT_COMPRESSION_NONE;
      chunks[i].key = (png_charp) text[2 * i];
      chunks[i].text = (png_charp) text[2 * i + 1];
    }
  png_set_text (png, info, chunks, n);
}

gboolean
sdcl_png_write (const gchar *path, guint width, guint height, guint channels,
                const guint8 *pixels, const gchar * const *text, GError **error)
{
  g_return_val_if_fail (channels == 3 || channels == 4, FALSE);
  g_autofree gchar *tmp = g_strdup_printf ("%s.partial-XXXXXX", path);
  gint fd = g_mkstemp (tmp);
  if (fd < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "cannot write %s: %s", path,
                   g_strerror (errno));
      return FALSE;
    }
  FILE *f = fdopen (fd, "wb");
  PngError perr = { "" };
  png_structp png = png_create_write_struct (PNG_LIBPNG_VER_STRING, &perr, png_error_fn,
                                             png_warning_fn);
  png_infop info = png_create_info_struct (png);
  if (setjmp (png_jmpbuf (png)))
    {
      png_destroy_write_struct (&png, &info);
      fclose (f);
      g_remove (tmp);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "writing %s failed: %s", path,
                   perr.message);
      return FALSE;
    }
  png_init_io (png, f);
  png_set_IHDR (png, info, width, height, 8,
                channels == 4 ? PNG_COLOR_TYPE_RGBA : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  set_text (png, info, text);
  png_write_info (png, info);
  for (guint y = 0; y < height; y++)
    png_write_row (png, pixels + (gsize) y * width * channels);
  png_write_end (png, info);
  png_destroy_write_struct (&png, &info);
  if (fclose (f) != 0 || g_rename (tmp, path) != 0)
    {
      int saved = errno;
      g_remove (tmp);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), "cannot write %s: %s", path,
                   g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}

guint8 *
sdcl_png_read_rgb (const gchar *path, guint *width, guint *height, GError **error)
{
  FILE *f = g_fopen (path, "rb");
  if (!f)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "cannot open %s: %s", path,
                   g_strerror (errno));
      return NULL;
    }
  PngError perr = { "" };
  png_structp png = png_create_read_struct (PNG_LIBPNG_VER_STRING, &perr, png_error_fn,
                                            png_warning_fn);
  png_infop info = png_create_info_struct (png);
  guint8 *volatile pixels = NULL;
  if (setjmp (png_jmpbuf (png)))
    {
      png_destroy_read_struct (&png, &info, NULL);
      fclose (f);
      g_free (pixels);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s is not a readable PNG: %s",
                   path, perr.message);
      return NULL;
    }
  png_init_io (png, f);
  png_read_info (png, info);
  png_set_expand (png);
  png_set_strip_16 (png);
  png_set_strip_alpha (png);
  png_set_gray_to_rgb (png);
  png_read_update_info (png, info);
  const guint w = png_get_image_width (png, info), h = png_get_image_height (png, info);
  if (w == 0 || h == 0 || w > 16384 || h > 16384 || png_get_rowbytes (png, info) != (gsize) w * 3)
    png_error (png, "unsupported size or layout");
  pixels = g_malloc ((gsize) w * h * 3);
  for (guint y = 0; y < h; y++)
    png_read_row (png, pixels + (gsize) y * w * 3, NULL);
  png_read_end (png, NULL);
  png_destroy_read_struct (&png, &info, NULL);
  fclose (f);
  *width = w;
  *height = h;
  return pixels;
}
