/* fuzz-tokenizer.c — fuzz entry for the tokenizer and the prompt parser:
 * any bytes either tokenize (ids in the vocabulary, chunks of 77 that start
 * and end right) or fail with an SDCL_PROMPT_ERROR; never crash.
 *
 *   clang -g -fsanitize=fuzzer,address,undefined -DSDCL_LIBFUZZER -Iengine -Itests \
 *     tests/fuzz-tokenizer.c build/engine/libsdcl.a \
 *     $(pkg-config --cflags --libs glib-2.0 gio-2.0 json-glib-1.0 OpenCL libpng) -lm
 *
 * test-tokenizer calls sdcl_fuzz_tokenizer over seeded mutations, so it
 * builds and runs on every `meson test` without clang.
 */
#include <stdint.h>
#include <string.h>

#include "prompt.h"

int sdcl_fuzz_tokenizer (const guint8 *data, gsize size);

int
sdcl_fuzz_tokenizer (const guint8 *data, gsize size)
{
  /* NUL-terminated copy of exactly the input */
  g_autofree gchar *text = g_malloc (size + 1);
  memcpy (text, data, size);
  text[size] = 0;
  SdclTokenizer *tok = sdcl_tokenizer_get (NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) ids = sdcl_tokenizer_encode (tok, text, &error);
  if (!ids && (!error || error->domain != SDCL_PROMPT_ERROR))
    g_error ("encode failed without a prompt error");
  for (guint i = 0; ids && i < ids->len; i++)
    if (g_array_index (ids, gint32, i) < 0 || g_array_index (ids, gint32, i) >= 49408)
      g_error ("id %d out of the vocabulary", g_array_index (ids, gint32, i));
  if (ids)
    g_free (sdcl_tokenizer_decode (tok, (gint32 *) ids->data, ids->len));
  g_clear_error (&error);
  g_autoptr (SdclPromptChunks) c = sdcl_prompt_chunks_new (text, 1, &error);
  if (!c && (!error || error->domain != SDCL_PROMPT_ERROR))
    g_error ("chunking failed without a prompt error");
  for (guint k = 0; c && k < c->n_chunks; k++)
    if (c->ids[k * SDCL_CLIP_CONTEXT] != SDCL_CLIP_START
        || c->ids[k * SDCL_CLIP_CONTEXT + SDCL_CLIP_CONTEXT - 1] != SDCL_CLIP_END)
      g_error ("chunk %u is not wrapped in start and end", k);
  return 0;
}

#ifdef SDCL_LIBFUZZER
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  return sdcl_fuzz_tokenizer (data, size);
}
#endif
