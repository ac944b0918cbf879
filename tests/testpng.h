/* testpng.h — PNG helpers for the image and CLI tests: write any PNG kind
 * libpng can (bit depths, palettes, interlacing) and read back what a file
 * holds (size, kind, text chunks), independently of engine/image.c.
 */
#pragma once

#include <glib.h>

typedef struct
{
  guint         width, height;
  guint         bit_depth;           /* 1, 2, 4, 8, 16 */
  guint         color_type;          /* PNG_COLOR_TYPE_* */
  gboolean      interlaced;          /* Adam7 */
  const guint8 *rows;                /* packed rows as libpng takes them (16-bit big-endian) */
  const guint8 *palette;             /* RGB triples, for PNG_COLOR_TYPE_PALETTE */
  guint         palette_len;         /* entries */
  const guint8 *trans;               /* palette alpha (tRNS), or NULL */
  guint         trans_len;
} SdclTestPng;

/* Writes `png` to `path`; asserts on failure. */
void sdcl_test_png_write (const gchar *path, const SdclTestPng *png);

/* The file as bytes (g_bytes_unref), to corrupt in memory. */
GBytes *sdcl_test_png_bytes (const SdclTestPng *png);

/* Reads a PNG's size, colour type and every text chunk (tEXt, zTXt, iTXt,
 * before or after the pixels) into `text` (key -> value, owned). FALSE and
 * `error` set when libpng refuses the file. */
gboolean sdcl_test_png_info (const gchar *path, guint *width, guint *height, guint *color_type,
                             GHashTable **text, GError **error);

/* A fresh temporary folder, and its removal with what is inside (one level). */
gchar *sdcl_test_scratch_new (const gchar *tmpl);
void   sdcl_test_scratch_remove (const gchar *dir);
