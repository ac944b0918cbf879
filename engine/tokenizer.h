/* tokenizer.h — the CLIP byte-level BPE tokenizer (internal), as
 * transformers 5's CLIPTokenizer for openai/clip-vit-large-patch14: NFC,
 * whitespace runs to one space, lower case, the CLIP split pattern, bytes
 * to unicode symbols, BPE with the word-end marker "</w>". No ftfy clean-up
 * (HTML entities, curly quotes, ligatures stay as typed): transformers 5
 * has none. The vocabulary is OpenAI's merges file, built into the engine.
 */
#pragma once

#include "sdcl.h"

#define SDCL_CLIP_START   49406     /* <|startoftext|> */
#define SDCL_CLIP_END     49407     /* <|endoftext|>, also SD 1.x's padding */
#define SDCL_CLIP_CONTEXT 77        /* start + 75 tokens + end */

typedef struct _SdclTokenizer SdclTokenizer;

/* The shared tokenizer, built on first use (thread-safe); NULL only when
 * the built-in vocabulary is damaged. Never freed. */
SdclTokenizer *sdcl_tokenizer_get (GError **error);

guint sdcl_tokenizer_vocab_size (SdclTokenizer *tok);

/* Token ids of `text` without start and end. Text that is not UTF-8 is
 * an error (SDCL_PROMPT_ERROR_INVALID_TEXT). */
GArray *sdcl_tokenizer_encode (SdclTokenizer *tok, const gchar *text, GError **error);

/* Text of ids (start, end and unknown ids are skipped), words separated
 * by single spaces as the word-end markers say. */
gchar *sdcl_tokenizer_decode (SdclTokenizer *tok, const gint32 *ids, guint n);
