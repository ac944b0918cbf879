/* testpng.c — see testpng.h. */
#include "testpng.h"

#include <png.h>
#include <stdio.h>
#include <string.h>
#include <glib/gstdio.h>

static void
fail_fn (png_structp png, png_const_charp msg)
{
  g_strlcpy (png_get_error_ptr (png), msg, 256);
  png_longjmp (png, 1);
}

static void
append_fn (png_structp png, png_bytep data, png_size_t n)
{
  g_byte_array_append (png_get_io_ptr (png), data, n);
}

static void
flush_fn (png_structp png)
{
}

static void
set_header (png_structp png, png_infop info, const SdclTestPng *p)
{
  png_set_IHDR (png, info, p->width, p->height, p->bit_depth, p->color_type,
                p->interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (p->palette)
    {
      png_color colours[256];
      for (guint i = 0; i < p->palette_len; i++)
        colours[i] = (png_color) { p->palette[3 * i], p->palette[3 * i + 1], p->palette[3 * i + 2] };
      png_set_PLTE (png, info, colours, p->palette_len);
    }
  if (p->trans)
    png_set_tRNS (png, info, p->trans, p->trans_len, NULL);
}

GBytes *
sdcl_test_png_bytes (const SdclTestPng *p)
{
  gchar message[256] = "";
  GByteArray *out = g_byte_array_new ();
  png_structp png = png_create_write_struct (PNG_LIBPNG_VER_STRING, message, fail_fn, NULL);
  png_infop info = png_create_info_struct (png);
  if (setjmp (png_jmpbuf (png)))
    g_error ("test PNG %ux%u not written: %s", p->width, p->height, message);
  png_set_write_fn (png, out, append_fn, flush_fn);
  set_header (png, info, p);
  png_write_info (png, info);
  const gsize row_bytes = png_get_rowbytes (png, info);
  g_autofree png_bytep *rows = g_new (png_bytep, p->height);
  for (guint y = 0; y < p->height; y++)
    rows[y] = (png_bytep) p->rows + y * row_bytes;
  png_write_image (png, rows);
  png_write_end (png, info);
  png_destroy_write_struct (&png, &info);
  return g_byte_array_free_to_bytes (out);
}

void
sdcl_test_png_write (const gchar *path, const SdclTestPng *p)
{
  g_autoptr (GBytes) bytes = sdcl_test_png_bytes (p);
  g_autoptr (GError) error = NULL;
  gsize n;
  const gchar *data = g_bytes_get_data (bytes, &n);
  g_file_set_contents (path, data, (gssize) n, &error);
  g_assert_no_error (error);
}

static GHashTable *
collect_text (png_structp png, png_infop info)
{
  GHashTable *text = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  png_textp chunks = NULL;
  const int n = png_get_text (png, info, &chunks, NULL);
  for (int i = 0; i < n; i++)
    g_hash_table_insert (text, g_strdup (chunks[i].key), g_strdup (chunks[i].text));
  return text;
}

gboolean
sdcl_test_png_info (const gchar *path, guint *width, guint *height, guint *color_type,
                    GHashTable **text, GError **error)
{
  FILE *f = g_fopen (path, "rb");
  if (!f)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT, "cannot open %s", path);
      return FALSE;
    }
  gchar message[256] = "";
  png_structp png = png_create_read_struct (PNG_LIBPNG_VER_STRING, message, fail_fn, NULL);
  png_infop info = png_create_info_struct (png);
  if (setjmp (png_jmpbuf (png)))
    {
      png_destroy_read_struct (&png, &info, NULL);
      fclose (f);
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: %s", path, message);
      return FALSE;
    }
  png_init_io (png, f);
  png_read_png (png, info, PNG_TRANSFORM_IDENTITY, NULL);
  *width = png_get_image_width (png, info);
  *height = png_get_image_height (png, info);
  *color_type = png_get_color_type (png, info);
  if (text)
    *text = collect_text (png, info);
  png_destroy_read_struct (&png, &info, NULL);
  fclose (f);
  return TRUE;
}

gchar *
sdcl_test_scratch_new (const gchar *tmpl)
{
  g_autoptr (GError) error = NULL;
  gchar *dir = g_dir_make_tmp (tmpl, &error);
  g_assert_no_error (error);
  return dir;
}

void
sdcl_test_scratch_remove (const gchar *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const gchar *name;
  while (d && (name = g_dir_read_name (d)))
    {
      g_autofree gchar *path = g_build_filename (dir, name, NULL);
      g_unlink (path);
    }
  g_rmdir (dir);
}
