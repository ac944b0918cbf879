/* fuzz-safetensors.c — libFuzzer entry point for the safetensors reader:
 * any input must either open, with every entry readable inside the input,
 * or fail with an SDCL_SAFETENSORS_ERROR; never crash or read outside.
 *
 *   clang -g -fsanitize=fuzzer,address,undefined -Iengine tests/fuzz-safetensors.c \
 *     engine/safetensors.c engine/tensor.c engine/runtime.c \
 *     $(pkg-config --cflags --libs glib-2.0 gio-2.0 json-glib-1.0 OpenCL) -lm
 *
 * (or link build/engine/libsdcl.a). test-safetensors links this file and runs
 * the same entry over seeded mutations, so it builds and runs on every
 * `meson test` without clang. -DSDCL_FUZZ_MAIN adds a main() that runs the
 * entry over the files named on the command line, for replaying a crash.
 */
#include <stdint.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  /* A copy of exactly `size` bytes, so a sanitizer sees any read past it. */
  g_autoptr (GBytes) bytes = g_bytes_new (data, size);
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclSafetensors) st = sdcl_safetensors_open_bytes (bytes, "fuzz.safetensors", &error);
  if (!st)
    {
      if (!error || error->domain != SDCL_SAFETENSORS_ERROR || !error->message[0])
        g_error ("open failed without a safetensors GError");
      return 0;
    }
  if (error)
    g_error ("open succeeded but set an error: %s", error->message);

  gconstpointer base = g_bytes_get_data (bytes, NULL);
  for (guint i = 0; i < sdcl_safetensors_n_tensors (st); i++)
    {
      const SdclSafetensorsEntry *e = sdcl_safetensors_nth (st, i);
      const guint8 *p = e->data;
      /* The input was copied, so entries point into the GBytes, not at
       * `data`; compared as integers to stay clear of pointer rules. */
      if (e->n_bytes > 0
          && ((guintptr) p < (guintptr) base
              || (guintptr) p + e->n_bytes > (guintptr) base + size))
        g_error ("tensor '%s' lies outside the input", e->name);
      if (sdcl_safetensors_get (st, e->name) != e)
        g_error ("tensor '%s' is not found by name", e->name);

      /* Touch every byte, so a sanitizer checks the whole range. */
      volatile guint8 sum = 0;
      for (gsize k = 0; k < e->n_bytes; k++)
        sum += p[k];
      (void) sum;

      g_autoptr (GError) read_error = NULL;
      gint64 numel = -1;
      g_autofree gfloat *f = sdcl_safetensors_read_f32 (st, e->name, &numel, &read_error);
      if (!f && !read_error)
        g_error ("read_f32 of '%s' failed without an error", e->name);
      if (f && numel != e->numel)
        g_error ("read_f32 of '%s' gave %" G_GINT64_FORMAT " values, not %" G_GINT64_FORMAT,
                 e->name, numel, e->numel);
    }
  return 0;
}

#ifdef SDCL_FUZZ_MAIN
int
main (int argc, char **argv)
{
  for (int i = 1; i < argc; i++)
    {
      gchar *contents = NULL;
      gsize len = 0;
      g_autoptr (GError) error = NULL;
      if (!g_file_get_contents (argv[i], &contents, &len, &error))
        {
          g_printerr ("%s\n", error->message);
          return 1;
        }
      LLVMFuzzerTestOneInput ((const uint8_t *) contents, len);
      g_free (contents);
      g_print ("%s: ok\n", argv[i]);
    }
  return 0;
}
#endif
