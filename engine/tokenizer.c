/* tokenizer.c — the CLIP byte-level BPE tokenizer; see tokenizer.h.
 *
 * The reference is transformers' CLIPTokenizer (tokenizers backend): the
 * special tokens are found in the raw text first; every other piece is
 * normalised (NFC, runs of white space to one space, lower case), split
 * with the CLIP pattern, turned into byte symbols (GPT-2's byte-to-unicode
 * table) with "</w>" on the last one, and merged by rank.
 */
#include "tokenizer.h"

#include <gio/gio.h>
#include <string.h>

G_DEFINE_QUARK (sdcl-prompt-error-quark, sdcl_prompt_error)

/* tools/embed-bytes.py output (bpe-vocab.c) */
extern const unsigned char sdcl_bpe_vocab_gz[];
extern const unsigned long sdcl_bpe_vocab_gz_size;

#define N_MERGES   48894
#define VOCAB_SIZE 49408
#define CACHE_MAX  16384

struct _SdclTokenizer
{
  GPtrArray  *symbols;           /* id -> symbol string, VOCAB_SIZE of them */
  GHashTable *merges;            /* left id * VOCAB_SIZE + right id -> (rank + 1) << 16 | merged id */
  gint32      byte_id[256];      /* byte -> id of its symbol (+ 256 with "</w>") */
  gint16      char_byte[512];    /* symbol code point -> byte, -1 if none */
  GRegex     *white;             /* runs of white space */
  GRegex     *split;             /* CLIP's pre-tokenizer pattern */
  GMutex      lock;              /* guards cache */
  GHashTable *cache;             /* word -> GArray of ids */
};

/* ---- building ------------------------------------------------------------------ */

static gchar *
inflate (GError **error)
{
  g_autoptr (GInputStream) raw = g_memory_input_stream_new_from_data (sdcl_bpe_vocab_gz,
                                                                       sdcl_bpe_vocab_gz_size, NULL);
  g_autoptr (GZlibDecompressor) z = g_zlib_decompressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP);
  g_autoptr (GInputStream) in = g_converter_input_stream_new (raw, G_CONVERTER (z));
  g_autoptr (GByteArray) out = g_byte_array_new ();
  guint8 buf[65536];
  gssize n;
  while ((n = g_input_stream_read (in, buf, sizeof buf, NULL, error)) > 0)
    g_byte_array_append (out, buf, n);
  if (n < 0)
    return NULL;
  g_byte_array_append (out, (const guint8 *) "", 1);
  return (gchar *) g_byte_array_free (g_steal_pointer (&out), FALSE);
}

static void
tokenizer_free (SdclTokenizer *t)
{
  if (!t)
    return;
  g_clear_pointer (&t->symbols, g_ptr_array_unref);
  g_clear_pointer (&t->merges, g_hash_table_unref);
  g_clear_pointer (&t->white, g_regex_unref);
  g_clear_pointer (&t->split, g_regex_unref);
  g_clear_pointer (&t->cache, g_hash_table_unref);
  g_mutex_clear (&t->lock);
  g_free (t);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclTokenizer, tokenizer_free)

static gpointer
pair_key (gint32 left, gint32 right)
{
  return GUINT_TO_POINTER ((guint) left * VOCAB_SIZE + (guint) right);
}

/* Adds a symbol; the id of a string is its last appearance, as in the
 * reference's vocab.json (the CLIP file has no duplicates). */
static void
add_symbol (SdclTokenizer *t, GHashTable *ids, gchar *s)
{
  g_hash_table_insert (ids, s, GINT_TO_POINTER (t->symbols->len));
  g_ptr_array_add (t->symbols, s);
}

static SdclTokenizer *
build (GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autofree gchar *text = inflate (&local);
  if (!text)
    {
      g_set_error (error, SDCL_PROMPT_ERROR, SDCL_PROMPT_ERROR_VOCABULARY,
                   "the built-in CLIP vocabulary cannot be read: %s", local->message);
      return NULL;
    }
  /* the lines, cut in place (not g_strsplit: under AddressSanitizer its
   * strstr measures the rest of the text for every line, minutes in all) */
  const gsize text_len = strlen (text);
  g_autofree gchar **lines = g_new (gchar *, N_MERGES + 1);
  guint n_lines = 0;
  for (gchar *p = text, *end = text + text_len; p < end && n_lines < N_MERGES + 1;)
    {
      gchar *nl = memchr (p, '\n', end - p);
      if (nl)
        *nl = '\0';
      lines[n_lines++] = p;
      p = nl ? nl + 1 : end;
    }
  if (n_lines < N_MERGES + 1)
    {
      g_set_error (error, SDCL_PROMPT_ERROR, SDCL_PROMPT_ERROR_VOCABULARY,
                   "the built-in CLIP vocabulary has %u lines, fewer than its %d merges",
                   n_lines, N_MERGES);
      return NULL;
    }

  g_autoptr (SdclTokenizer) t = g_new0 (SdclTokenizer, 1);
  g_autoptr (GHashTable) ids = g_hash_table_new (g_str_hash, g_str_equal);   /* string -> id */
  t->symbols = g_ptr_array_new_with_free_func (g_free);
  t->merges = g_hash_table_new (g_direct_hash, g_direct_equal);
  t->cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                    (GDestroyNotify) g_array_unref);
  g_mutex_init (&t->lock);

  /* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for
   * themselves, the rest map to 256, 257, ... in byte order; the vocabulary
   * lists them in that order (printable first) */
  gunichar byte_char[256];
  guint order[256], n_order = 0;
  gboolean printable[256] = { FALSE };
  for (guint b = '!'; b <= '~'; b++)
    printable[b] = TRUE;
  for (guint b = 0xA1; b <= 0xAC; b++)
    printable[b] = TRUE;
  for (guint b = 0xAE; b <= 0xFF; b++)
    printable[b] = TRUE;
  for (guint b = 0; b < 256; b++)
    if (printable[b])
      {
        t->byte_id[b] = n_order;
        order[n_order++] = b;
        byte_char[b] = b;
      }
  gunichar next = 256;
  for (guint b = 0; b < 256; b++)
    if (!printable[b])
      {
        t->byte_id[b] = n_order;
        order[n_order++] = b;
        byte_char[b] = next++;
      }
  memset (t->char_byte, 0xff, sizeof t->char_byte);
  for (guint b = 0; b < 256; b++)
    t->char_byte[byte_char[b]] = b;

  for (guint i = 0; i < 256; i++)
    {
      gchar u[8] = { 0 };
      g_unichar_to_utf8 (byte_char[order[i]], u);
      add_symbol (t, ids, g_strdup (u));
    }
  for (guint i = 0; i < 256; i++)
    add_symbol (t, ids, g_strconcat (g_ptr_array_index (t->symbols, i), "</w>", NULL));
  /* a merge line is "left right"; its symbol is the two joined */
  for (guint i = 0; i < N_MERGES; i++)
    {
      const gchar *line = lines[1 + i], *space = strchr (line, ' ');
      if (!space || space == line || !space[1] || strchr (space + 1, ' '))
        {
          g_set_error (error, SDCL_PROMPT_ERROR, SDCL_PROMPT_ERROR_VOCABULARY,
                       "line %u of the built-in CLIP vocabulary is not a merge: %s", i + 2, line);
          return NULL;
        }
      g_autofree gchar *left = g_strndup (line, space - line);
      add_symbol (t, ids, g_strconcat (left, space + 1, NULL));
    }
  add_symbol (t, ids, g_strdup ("<|startoftext|>"));
  add_symbol (t, ids, g_strdup ("<|endoftext|>"));
  g_assert (t->symbols->len == VOCAB_SIZE);

  /* the merges by symbol ids, once every id is known */
  for (guint i = 0; i < N_MERGES; i++)
    {
      const gchar *line = lines[1 + i], *space = strchr (line, ' ');
      g_autofree gchar *left = g_strndup (line, space - line);
      gpointer l, r, m;
      if (!g_hash_table_lookup_extended (ids, left, NULL, &l)
          || !g_hash_table_lookup_extended (ids, space + 1, NULL, &r)
          || !g_hash_table_lookup_extended (ids, t->symbols->pdata[512 + i], NULL, &m))
        {
          g_set_error (error, SDCL_PROMPT_ERROR, SDCL_PROMPT_ERROR_VOCABULARY,
                       "line %u of the built-in CLIP vocabulary merges a symbol it does not have: %s",
                       i + 2, line);
          return NULL;
        }
      g_hash_table_insert (t->merges, pair_key (GPOINTER_TO_INT (l), GPOINTER_TO_INT (r)),
                           GUINT_TO_POINTER ((i + 1) << 16 | GPOINTER_TO_UINT (m)));
    }

  /* white space is spelled out: PCRE2's \s also takes U+180E (Mongolian
   * vowel separator, a format character since Unicode 6.3), the
   * reference's Oniguruma does not */
#define WHITE "\\t\\n\\x0b\\f\\r\\x{85}\\p{Z}"
  t->white = g_regex_new ("[" WHITE "]+", G_REGEX_OPTIMIZE, 0, NULL);
  t->split = g_regex_new ("<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|"
                          "[\\p{L}]+|[\\p{N}]|[^" WHITE "\\p{L}\\p{N}]+", G_REGEX_OPTIMIZE, 0, NULL);
#undef WHITE
  g_assert (t->white && t->split);
  return g_steal_pointer (&t);
}

SdclTokenizer *
sdcl_tokenizer_get (GError **error)
{
  static SdclTokenizer *shared;
  static GMutex lock;
  /* a mutex rather than g_once: a failure is reported to every caller,
   * not only the first */
  g_mutex_lock (&lock);
  if (!shared)
    shared = build (error);
  SdclTokenizer *t = shared;
  g_mutex_unlock (&lock);
  return t;
}

guint
sdcl_tokenizer_vocab_size (SdclTokenizer *t)
{
  return t->symbols->len;
}

/* ---- BPE ------------------------------------------------------------------------ */

/* Ids of one pre-tokenized word (raw UTF-8 bytes): one symbol per byte,
 * the last with the word-end marker, then the pair of lowest rank is
 * merged wherever it occurs, left to right, until no pair has a rank
 * (OpenAI's CLIP bpe(); tokenizers' BPE model gives the same). */
static void
bpe_word (SdclTokenizer *t, const gchar *word, gsize len, GArray *out)
{
  g_autofree gint32 *sym = g_new (gint32, len);
  gsize n = len;
  for (gsize i = 0; i < len; i++)
    sym[i] = t->byte_id[(guint8) word[i]] + (i + 1 == len ? 256 : 0);
  while (n > 1)
    {
      guint best = G_MAXUINT;
      gint32 left = 0, right = 0, merged = 0;
      for (gsize i = 0; i + 1 < n; i++)
        {
          const guint v = GPOINTER_TO_UINT (g_hash_table_lookup (t->merges,
                                                                 pair_key (sym[i], sym[i + 1])));
          if (v && (v >> 16) < best)
            {
              best = v >> 16;
              left = sym[i];
              right = sym[i + 1];
              merged = v & 0xffff;
            }
        }
      if (best == G_MAXUINT)
        break;
      gsize w = 0;
      for (gsize i = 0; i < n; i++)
        {
          if (i + 1 < n && sym[i] == left && sym[i + 1] == right)
            {
              sym[w++] = merged;
              i++;
            }
          else
            sym[w++] = sym[i];
        }
      n = w;
    }
  g_array_append_vals (out, sym, n);
}

/* Unicode lower case as the reference (Rust's char::to_lowercase, one
 * character at a time): not g_utf8_strdown, which follows the locale
 * (Turkish I -> ı) and turns a word-final Σ into ς. Special casing: İ
 * becomes i + combining dot; and GLib leaves alone the letter-like symbols
 * that are not letters but have a lower-case form (Roman numerals Ⅰ-Ⅿ,
 * circled Ⓐ-Ⓩ). */
static gchar *
lower_case (const gchar *s)
{
  g_autoptr (GString) out = g_string_sized_new (strlen (s));
  for (const gchar *p = s; *p; p = g_utf8_next_char (p))
    {
      const gunichar c = g_utf8_get_char (p);
      if (c == 0x0130)
        g_string_append (out, "i\xcc\x87");
      else if (c >= 0x2160 && c <= 0x216F)
        g_string_append_unichar (out, c + 0x10);
      else if (c >= 0x24B6 && c <= 0x24CF)
        g_string_append_unichar (out, c + 0x1A);
      else
        g_string_append_unichar (out, g_unichar_tolower (c));
    }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

/* Ids of one pre-tokenized word, through the cache. */
static void
encode_word (SdclTokenizer *t, const gchar *text, gsize len, GArray *out)
{
  g_autofree gchar *word = g_strndup (text, len);
  g_mutex_lock (&t->lock);
  GArray *hit = g_hash_table_lookup (t->cache, word);
  if (hit)
    g_array_append_vals (out, hit->data, hit->len);
  g_mutex_unlock (&t->lock);
  if (hit)
    return;
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  bpe_word (t, word, len, ids);
  g_array_append_vals (out, ids->data, ids->len);
  g_mutex_lock (&t->lock);
  if (g_hash_table_size (t->cache) >= CACHE_MAX)
    g_hash_table_remove_all (t->cache);
  g_hash_table_replace (t->cache, g_steal_pointer (&word), ids);
  g_mutex_unlock (&t->lock);
}

/* Normalises, splits and encodes text that holds no special token. */
static void
encode_plain (SdclTokenizer *t, const gchar *text, gssize len, GArray *out)
{
  g_autofree gchar *nfc = g_utf8_normalize (text, len, G_NORMALIZE_NFC);
  g_autofree gchar *spaced = g_regex_replace_literal (t->white, nfc, -1, 0, " ", 0, NULL);
  g_autofree gchar *lower = lower_case (spaced);
  g_autoptr (GMatchInfo) m = NULL;
  g_regex_match (t->split, lower, 0, &m);
  while (g_match_info_matches (m))
    {
      gint start, end;
      g_match_info_fetch_pos (m, 0, &start, &end);
      const gchar *w = lower + start;
      /* a special token's text that was not the special token itself (it
       * differed in case) goes on to the byte-level pre-tokenizer's own
       * split, GPT-2's pattern: "<|", the word, "|>" */
      const gsize n = end - start;
      if ((n == 15 && strncmp (w, "<|startoftext|>", n) == 0)
          || (n == 13 && strncmp (w, "<|endoftext|>", n) == 0))
        {
          encode_word (t, w, 2, out);
          encode_word (t, w + 2, n - 4, out);
          encode_word (t, w + n - 2, 2, out);
        }
      else
        encode_word (t, w, n, out);
      g_match_info_next (m, NULL);
    }
}

GArray *
sdcl_tokenizer_encode (SdclTokenizer *t, const gchar *text, GError **error)
{
  const gchar *bad;
  if (!g_utf8_validate (text, -1, &bad))
    {
      g_set_error (error, SDCL_PROMPT_ERROR, SDCL_PROMPT_ERROR_INVALID_TEXT,
                   "the prompt is not valid UTF-8 text (at byte %" G_GSIZE_FORMAT ")",
                   (gsize) (bad - text));
      return NULL;
    }
  GArray *out = g_array_new (FALSE, FALSE, sizeof (gint32));
  /* the special tokens count where they appear verbatim, before any
   * normalisation, as in the reference */
  static const struct { const gchar *text; gint32 id; } specials[] = {
    { "<|startoftext|>", SDCL_CLIP_START }, { "<|endoftext|>", SDCL_CLIP_END },
  };
  const gchar *p = text;
  for (;;)
    {
      const gchar *first = NULL;
      guint which = 0;
      for (guint i = 0; i < G_N_ELEMENTS (specials); i++)
        {
          const gchar *at = strstr (p, specials[i].text);
          if (at && (!first || at < first))
            {
              first = at;
              which = i;
            }
        }
      if (!first)
        break;
      encode_plain (t, p, first - p, out);
      g_array_append_val (out, specials[which].id);
      p = first + strlen (specials[which].text);
    }
  encode_plain (t, p, -1, out);
  return out;
}

gchar *
sdcl_tokenizer_decode (SdclTokenizer *t, const gint32 *ids, guint n)
{
  g_autoptr (GString) bytes = g_string_new (NULL);
  for (guint i = 0; i < n; i++)
    {
      if (ids[i] < 0 || ids[i] >= SDCL_CLIP_START)
        continue;
      const gchar *s = t->symbols->pdata[ids[i]];
      const gboolean end = g_str_has_suffix (s, "</w>");
      const gchar *stop = end ? s + strlen (s) - 4 : s + strlen (s);
      for (const gchar *c = s; c < stop; c = g_utf8_next_char (c))
        {
          const gunichar u = g_utf8_get_char (c);
          if (u < G_N_ELEMENTS (t->char_byte) && t->char_byte[u] >= 0)
            g_string_append_c (bytes, (gchar) t->char_byte[u]);
        }
      if (end)
        g_string_append_c (bytes, ' ');
    }
  while (bytes->len && bytes->str[bytes->len - 1] == ' ')
    g_string_truncate (bytes, bytes->len - 1);
  return g_utf8_make_valid (bytes->str, bytes->len);
}
