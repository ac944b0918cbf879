/* prompt.c — sd-webui prompt syntax and chunking; see prompt.h. */
#include "prompt.h"

#include <string.h>

#define COMMA_ID 267            /* ",</w>" */

/* ---- emphasis ------------------------------------------------------------------ */

static void
clear_segment (gpointer p)
{
  g_free (((SdclPromptSegment *) p)->text);
}

static void
append (GArray *res, const gchar *text, gssize len, gdouble weight)
{
  SdclPromptSegment s = { g_strndup (text, len < 0 ? strlen (text) : (gsize) len), weight };
  g_array_append_val (res, s);
}

static void
multiply_from (GArray *res, guint start, gdouble m)
{
  for (guint i = start; i < res->len; i++)
    g_array_index (res, SdclPromptSegment, i).weight *= m;
}

/* The reference's patterns are Python's, whose \s and \w differ from
 * PCRE2's: Python's \s takes the separators U+001C-U+001F but not U+180E,
 * its \w is letters, numbers and '_' (PCRE2's also takes combining marks
 * and connector punctuation). So both are spelled out here. */
#define PY_SPACE "[\\t\\n\\x0b\\f\\r\\x1c-\\x1f\\x{85}\\p{Z}]"
#define PY_WORD  "[\\p{L}\\p{N}_]"

/* Plain text, cut where BREAK stands as a word. */
static void
append_text (GArray *res, const gchar *text, gssize len)
{
  static GRegex *brk;
  static gsize once;
  if (g_once_init_enter (&once))
    {
      brk = g_regex_new (PY_SPACE "*(?<!" PY_WORD ")BREAK(?!" PY_WORD ")" PY_SPACE "*",
                         G_REGEX_DOTALL | G_REGEX_OPTIMIZE, 0, NULL);
      g_once_init_leave (&once, 1);
    }
  g_autofree gchar *copy = g_strndup (text, len);
  g_auto (GStrv) parts = g_regex_split (brk, copy, 0);
  for (guint i = 0; parts[i]; i++)
    {
      if (i > 0)
        append (res, "BREAK", -1, SDCL_PROMPT_BREAK);
      append (res, parts[i], -1, 1.0);
    }
}

/* The weight in "(text:1.3)" as Python's float() reads it — digits of any
 * script, at most one point, at least one digit — or FALSE where float()
 * would raise (":1.2.3)", ":.)"). */
static gboolean
parse_weight (const gchar *s, gdouble *weight)
{
  g_autoptr (GString) ascii = g_string_new (NULL);
  guint digits = 0, points = 0;
  for (const gchar *p = s; *p; p = g_utf8_next_char (p))
    {
      const gunichar c = g_utf8_get_char (p);
      const gint v = g_unichar_digit_value (c);
      if (v >= 0)
        {
          g_string_append_c (ascii, '0' + v);
          digits++;
        }
      else if (c == '.' && ++points == 1)
        g_string_append_c (ascii, '.');
      else if ((c == '+' || c == '-') && p == s)
        g_string_append_c (ascii, c);
      else
        return FALSE;
    }
  if (digits == 0)
    return FALSE;
  *weight = g_ascii_strtod (ascii->str, NULL);
  return TRUE;
}

GArray *
sdcl_prompt_parse (const gchar *prompt)
{
  static GRegex *re;
  static gsize once;
  if (g_once_init_enter (&once))
    {
      re = g_regex_new ("\\\\\\(|\\\\\\)|\\\\\\[|\\\\]|\\\\\\\\|\\\\|\\(|\\[|"
                        ":" PY_SPACE "*([+-]?[.\\d]+)" PY_SPACE "*\\)|\\)|]|[^\\\\()\\[\\]:]+|:",
                        G_REGEX_OPTIMIZE, 0, NULL);
      g_once_init_leave (&once, 1);
    }
  GArray *res = g_array_new (FALSE, FALSE, sizeof (SdclPromptSegment));
  g_array_set_clear_func (res, clear_segment);
  g_autoptr (GArray) round = g_array_new (FALSE, FALSE, sizeof (guint));
  g_autoptr (GArray) square = g_array_new (FALSE, FALSE, sizeof (guint));
  /* every character matches one alternative, so the matches tile the
   * prompt; one after another from `pos` */
  const gsize len = strlen (prompt);
  gsize pos = 0;
  while (pos < len)
    {
      g_autoptr (GMatchInfo) m = NULL;
      if (!g_regex_match_full (re, prompt, len, pos, 0, &m, NULL))
        break;
      gint start, end;
      g_match_info_fetch_pos (m, 0, &start, &end);
      const gchar *text = prompt + start;
      const gsize n = end - start;
      g_autofree gchar *weight_text = g_match_info_fetch (m, 1);
      gdouble weight = 0;
      const guint here = res->len;
      pos = end;
      if (text[0] == '\\')
        append (res, text + 1, n - 1, 1.0);
      else if (n == 1 && text[0] == '(')
        g_array_append_val (round, here);
      else if (n == 1 && text[0] == '[')
        g_array_append_val (square, here);
      else if (weight_text && *weight_text && round->len)
        {
          if (parse_weight (weight_text, &weight))
            {
              multiply_from (res, g_array_index (round, guint, round->len - 1), weight);
              g_array_set_size (round, round->len - 1);
            }
          else
            {
              /* the reference stops with a ValueError; read the colon
               * as text and go on after it, as in "(a:bad)" */
              append (res, ":", 1, 1.0);
              pos = start + 1;
            }
        }
      else if (n == 1 && text[0] == ')' && round->len)
        {
          multiply_from (res, g_array_index (round, guint, round->len - 1), 1.1);
          g_array_set_size (round, round->len - 1);
        }
      else if (n == 1 && text[0] == ']' && square->len)
        {
          multiply_from (res, g_array_index (square, guint, square->len - 1), 1 / 1.1);
          g_array_set_size (square, square->len - 1);
        }
      else
        append_text (res, text, n);
    }
  /* brackets left open apply to the rest */
  for (guint i = 0; i < round->len; i++)
    multiply_from (res, g_array_index (round, guint, i), 1.1);
  for (guint i = 0; i < square->len; i++)
    multiply_from (res, g_array_index (square, guint, i), 1 / 1.1);
  if (res->len == 0)
    append (res, "", 0, 1.0);
  /* merge neighbours of equal weight */
  for (guint i = 0; i + 1 < res->len;)
    {
      SdclPromptSegment *a = &g_array_index (res, SdclPromptSegment, i);
      SdclPromptSegment *b = &g_array_index (res, SdclPromptSegment, i + 1);
      if (a->weight == b->weight)
        {
          gchar *joined = g_strconcat (a->text, b->text, NULL);
          g_free (a->text);
          a->text = joined;
          g_array_remove_index (res, i + 1);
        }
      else
        i++;
    }
  return res;
}

/* ---- chunks ---------------------------------------------------------------------- */

void
sdcl_prompt_chunks_free (SdclPromptChunks *c)
{
  if (!c)
    return;
  g_free (c->ids);
  g_free (c->weights);
  g_free (c);
}

typedef struct
{
  GArray *ids;          /* all chunks so far, 77 each */
  GArray *weights;
  GArray *cur_ids;      /* the chunk being filled, without start/end */
  GArray *cur_weights;
  gint    last_comma;
} Builder;

static void
finish_chunk (Builder *b)
{
  const gint32 start = SDCL_CLIP_START, end = SDCL_CLIP_END;
  const gfloat one = 1.0f;
  g_array_append_val (b->ids, start);
  g_array_append_val (b->weights, one);
  g_array_append_vals (b->ids, b->cur_ids->data, b->cur_ids->len);
  g_array_append_vals (b->weights, b->cur_weights->data, b->cur_weights->len);
  for (guint i = b->cur_ids->len; i < SDCL_PROMPT_CHUNK + 1; i++)
    {
      g_array_append_val (b->ids, end);
      g_array_append_val (b->weights, one);
    }
  g_array_set_size (b->cur_ids, 0);
  g_array_set_size (b->cur_weights, 0);
  b->last_comma = -1;
}

SdclPromptChunks *
sdcl_prompt_chunks_new (const gchar *prompt, guint min_chunks, GError **error)
{
  SdclTokenizer *tok = sdcl_tokenizer_get (error);
  if (!tok)
    return NULL;
  if (!g_utf8_validate (prompt, -1, NULL))
    {
      g_set_error (error, SDCL_PROMPT_ERROR, SDCL_PROMPT_ERROR_INVALID_TEXT,
                   "the prompt is not valid UTF-8 text");
      return NULL;
    }
  g_autoptr (GArray) segments = sdcl_prompt_parse (prompt);
  Builder b = {
    g_array_new (FALSE, FALSE, sizeof (gint32)), g_array_new (FALSE, FALSE, sizeof (gfloat)),
    g_array_new (FALSE, FALSE, sizeof (gint32)), g_array_new (FALSE, FALSE, sizeof (gfloat)), -1,
  };
  guint n_tokens = 0;
  gboolean ok = TRUE;
  for (guint s = 0; ok && s < segments->len; s++)
    {
      const SdclPromptSegment *seg = &g_array_index (segments, SdclPromptSegment, s);
      if (seg->weight == SDCL_PROMPT_BREAK && g_str_equal (seg->text, "BREAK"))
        {
          finish_chunk (&b);
          continue;
        }
      g_autoptr (GArray) ids = sdcl_tokenizer_encode (tok, seg->text, error);
      if (!ids)
        {
          ok = FALSE;
          break;
        }
      n_tokens += ids->len;
      const gfloat w = (gfloat) seg->weight;
      for (guint i = 0; i < ids->len; i++)
        {
          const gint32 id = g_array_index (ids, gint32, i);
          if (id == COMMA_ID)
            b.last_comma = b.cur_ids->len;
          else if (b.cur_ids->len == SDCL_PROMPT_CHUNK && b.last_comma != -1
                   && (gint) b.cur_ids->len - b.last_comma <= SDCL_PROMPT_BACKTRACK)
            {
              /* move what follows the comma on to the next chunk */
              const guint at = b.last_comma + 1, n = b.cur_ids->len - at;
              g_autofree gint32 *moved_ids = g_memdup2 (&g_array_index (b.cur_ids, gint32, at),
                                                        n * sizeof (gint32));
              g_autofree gfloat *moved_w = g_memdup2 (&g_array_index (b.cur_weights, gfloat, at),
                                                      n * sizeof (gfloat));
              g_array_set_size (b.cur_ids, at);
              g_array_set_size (b.cur_weights, at);
              finish_chunk (&b);
              g_array_append_vals (b.cur_ids, moved_ids, n);
              g_array_append_vals (b.cur_weights, moved_w, n);
            }
          if (b.cur_ids->len == SDCL_PROMPT_CHUNK)
            finish_chunk (&b);
          g_array_append_val (b.cur_ids, id);
          g_array_append_val (b.cur_weights, w);
          if (b.ids->len / SDCL_CLIP_CONTEXT >= SDCL_PROMPT_MAX_CHUNKS)
            {
              g_set_error (error, SDCL_PROMPT_ERROR, SDCL_PROMPT_ERROR_TOO_LONG,
                           "the prompt is longer than %d tokens",
                           SDCL_PROMPT_MAX_CHUNKS * SDCL_PROMPT_CHUNK);
              ok = FALSE;
              break;
            }
        }
    }
  if (ok && (b.cur_ids->len > 0 || b.ids->len == 0))
    finish_chunk (&b);
  while (ok && b.ids->len / SDCL_CLIP_CONTEXT < min_chunks)
    finish_chunk (&b);
  SdclPromptChunks *c = NULL;
  if (ok)
    {
      c = g_new0 (SdclPromptChunks, 1);
      c->n_chunks = b.ids->len / SDCL_CLIP_CONTEXT;
      c->n_tokens = n_tokens;
      c->ids = (gint32 *) g_array_free (b.ids, FALSE);
      c->weights = (gfloat *) g_array_free (b.weights, FALSE);
    }
  else
    {
      g_array_unref (b.ids);
      g_array_unref (b.weights);
    }
  g_array_unref (b.cur_ids);
  g_array_unref (b.cur_weights);
  return c;
}
