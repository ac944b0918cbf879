/* test-tokenizer.c — the CLIP tokenizer against golden ids from transformers'
 * CLIPTokenizer (tests/fixtures/tokenizer.json, made by
 * tests/reference/make_tokenizer_fixtures.py), and sd-webui's prompt
 * syntax and chunking (expected values worked out from
 * stable-diffusion-webui's parse_prompt_attention and tokenize_line).
 */
#include <json-glib/json-glib.h>
#include <locale.h>
#include <math.h>
#include <string.h>

#include "prompt.h"
#include "testutil.h"

static SdclTokenizer *tok;

static GArray *
encode (const gchar *text)
{
  g_autoptr (GError) error = NULL;
  GArray *ids = sdcl_tokenizer_encode (tok, text, &error);
  g_assert_no_error (error);
  return ids;
}

static gint32
single_id (const gchar *word)
{
  g_autoptr (GArray) ids = encode (word);
  g_assert_cmpuint (ids->len, ==, 1);
  return g_array_index (ids, gint32, 0);
}

/* ---- golden ids ------------------------------------------------------------------- */

static void
test_golden (void)
{
  g_autofree gchar *path = sdcl_test_fixture ("tokenizer.json");
  g_autoptr (JsonParser) p = json_parser_new ();
  g_autoptr (GError) error = NULL;
  json_parser_load_from_file (p, path, &error);
  g_assert_no_error (error);
  JsonArray *cases = json_node_get_array (json_parser_get_root (p));
  const guint n = json_array_get_length (cases);
  g_assert_cmpuint (n, >=, 60);
  guint failed = 0;
  for (guint i = 0; i < n; i++)
    {
      JsonObject *c = json_array_get_object_element (cases, i);
      const gchar *text = json_object_get_string_member (c, "text");
      JsonArray *want = json_object_get_array_member (c, "ids");
      g_autoptr (GArray) got = encode (text);
      gboolean same = got->len == json_array_get_length (want);
      for (guint j = 0; same && j < got->len; j++)
        same = g_array_index (got, gint32, j) == json_array_get_int_element (want, j);
      if (!same)
        {
          g_autoptr (GString) g = g_string_new (NULL), w = g_string_new (NULL);
          for (guint j = 0; j < got->len; j++)
            g_string_append_printf (g, " %d", g_array_index (got, gint32, j));
          for (guint j = 0; j < json_array_get_length (want); j++)
            g_string_append_printf (w, " %" G_GINT64_FORMAT, json_array_get_int_element (want, j));
          g_test_message ("\"%s\": expected [%s ] got [%s ]", text, w->str, g->str);
          failed++;
        }
    }
  g_test_message ("%u golden strings", n);
  g_assert_cmpuint (failed, ==, 0);
}

/* decode then encode gives the same ids (the text itself changes: lower
 * case, one space between words) */
static void
test_round_trip (void)
{
  static const gchar *texts[] = {
    "a photograph of an astronaut riding a horse", "Ångström café, naïve", "東京タワーの夜景",
    "🐱‍👤 ninja cat", "12345 3.14", "it's (word:1.3) [[x]] \\(y\\)", "a" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  };
  for (guint i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      g_autoptr (GArray) ids = encode (texts[i]);
      g_autofree gchar *back = sdcl_tokenizer_decode (tok, (gint32 *) ids->data, ids->len);
      g_autoptr (GArray) again = encode (back);
      g_test_message ("\"%s\" -> \"%s\"", texts[i], back);
      g_assert_cmpmem (again->data, again->len * 4, ids->data, ids->len * 4);
    }
  g_autoptr (GArray) ids = encode ("Hello   World");
  g_autofree gchar *back = sdcl_tokenizer_decode (tok, (gint32 *) ids->data, ids->len);
  g_assert_cmpstr (back, ==, "hello world");
}

static void
test_invalid_utf8 (void)
{
  g_autoptr (GError) error = NULL;
  g_assert_null (sdcl_tokenizer_encode (tok, "caf\xc3 and \xff\xfe", &error));
  g_assert_error (error, SDCL_PROMPT_ERROR, SDCL_PROMPT_ERROR_INVALID_TEXT);
  g_clear_error (&error);
  g_assert_null (sdcl_prompt_chunks_new ("ok \x80", 1, &error));
  g_assert_error (error, SDCL_PROMPT_ERROR, SDCL_PROMPT_ERROR_INVALID_TEXT);
}

static void
test_long_text (void)
{
  /* 10,000 made-up words (few of them in the word cache) */
  g_autoptr (GString) s = g_string_new (NULL);
  guint32 state = 7;
  for (guint i = 0; i < 10000; i++)
    {
      state = sdcl_test_hash (state);
      for (guint k = 0; k < 4 + state % 8; k++)
        g_string_append_c (s, 'a' + sdcl_test_hash (state + k) % 26);
      g_string_append (s, i % 5 == 4 ? ", " : " ");
    }
  const gint64 t0 = g_get_monotonic_time ();
  g_autoptr (GArray) ids = encode (s->str);
  g_test_message ("10,000 words -> %u tokens in %.3f s", ids->len,
                  (g_get_monotonic_time () - t0) / 1e6);
  g_assert_cmpuint (ids->len, >, 20000);
  /* as a prompt it is too long, and said so */
  g_autoptr (GError) error = NULL;
  g_assert_null (sdcl_prompt_chunks_new (s->str, 1, &error));
  g_assert_error (error, SDCL_PROMPT_ERROR, SDCL_PROMPT_ERROR_TOO_LONG);
}

/* ---- emphasis ---------------------------------------------------------------------- */

typedef struct
{
  const gchar *prompt;
  guint        n;
  struct { const gchar *text; gdouble weight; } seg[10];
} ParseCase;

static const ParseCase parse_cases[] = {
  { "a (b) c", 3, { { "a ", 1 }, { "b", 1.1 }, { " c", 1 } } },
  { "a ((b)) c", 3, { { "a ", 1 }, { "b", 1.21 }, { " c", 1 } } },
  { "a [b] c", 3, { { "a ", 1 }, { "b", 1 / 1.1 }, { " c", 1 } } },
  { "[[x]]", 1, { { "x", 1 / 1.1 / 1.1 } } },
  { "a (b:1.5) c", 3, { { "a ", 1 }, { "b", 1.5 }, { " c", 1 } } },
  { "(a (b:1.5)) c", 3, { { "a ", 1.1 }, { "b", 1.65 }, { " c", 1 } } },
  { "(a:1.2) (b:0.8)", 3, { { "a", 1.2 }, { " ", 1 }, { "b", 0.8 } } },
  { "a (b [c] d) e", 5, { { "a ", 1 }, { "b ", 1.1 }, { "c", 1 }, { " d", 1.1 }, { " e", 1 } } },
  { "\\(literal\\) text", 1, { { "(literal) text", 1 } } },
  { "a\\\\b", 1, { { "a\\b", 1 } } },
  { "(unclosed text", 1, { { "unclosed text", 1.1 } } },
  { "stray) paren]", 1, { { "stray) paren]", 1 } } },
  { "(a:bad)", 1, { { "a:bad", 1.1 } } },
  { "(a:1.5", 1, { { "a:1.5", 1.1 } } },
  { "a:b", 1, { { "a:b", 1 } } },
  { "()", 1, { { "", 1 } } },
  { "", 1, { { "", 1 } } },
  { "a BREAK b", 3, { { "a", 1 }, { "BREAK", -1 }, { "b", 1 } } },
  { "BREAK a", 3, { { "", 1 }, { "BREAK", -1 }, { "a", 1 } } },
  { "(a) BREAK (b)", 5, { { "a", 1.1 }, { "", 1 }, { "BREAK", -1 }, { "", 1 }, { "b", 1.1 } } },
  { "aBREAKb BREAKfast", 1, { { "aBREAKb BREAKfast", 1 } } },
  /* A1111's own doctests */
  { "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", 9,
    { { "a ", 1 }, { "house", 1.573 }, { " ", 1.1 }, { "on", 1 }, { " a ", 1.1 }, { "hill", 0.55 },
      { ", sun, ", 1.1 }, { "sky", 1.4641 }, { ".", 1.1 } } },
  { "(unnecessary)(parens)", 1, { { "unnecessaryparens", 1.1 } } },
  { "\\(literal\\]", 1, { { "(literal]", 1 } } },
  /* a lone backslash escapes nothing and vanishes */
  { "a\\b", 1, { { "ab", 1 } } },
  { "a BREAK", 3, { { "a", 1 }, { "BREAK", -1 }, { "", 1 } } },
  { "BREAK", 3, { { "", 1 }, { "BREAK", -1 }, { "", 1 } } },
  /* BREAK inside brackets is weighted like text, so it is no longer a BREAK */
  { "(a BREAK b)", 3, { { "a", 1.1 }, { "BREAK", -1.1 }, { "b", 1.1 } } },
  /* BREAK is a word as Python's \b sees it (letters, numbers, '_');
   * any of Python's white space around it goes */
  { "x_BREAK y\u00a0BREAK\u3000z", 3, { { "x_BREAK y", 1 }, { "BREAK", -1 }, { "z", 1 } } },
  { "(a: 1.5 )", 1, { { "a", 1.5 } } },
  /* Python's float() reads digits of any script */
  { "(a:\u0661.\u0665)", 1, { { "a", 1.5 } } },
  { "((a:2):3)", 1, { { "a", 6 } } },
  { "[(a)]", 1, { { "a", 1 } } },
  { "[a:0.5]", 1, { { "a:0.5", 1 / 1.1 } } },
  { "a )( b", 2, { { "a )", 1 }, { " b", 1.1 } } },
  { "(a]b)", 1, { { "a]b", 1.1 } } },
  /* A1111 fails with a ValueError on a weight float() cannot read; here
   * the colon is text, as in "(a:bad)" */
  { "(a:1.2.3)", 1, { { "a:1.2.3", 1.1 } } },
  { "(a:.) b", 2, { { "a:.", 1.1 }, { " b", 1 } } },
};

static void
test_parse (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (parse_cases); i++)
    {
      const ParseCase *c = &parse_cases[i];
      g_autoptr (GArray) got = sdcl_prompt_parse (c->prompt);
      g_autoptr (GString) s = g_string_new (NULL);
      for (guint j = 0; j < got->len; j++)
        {
          const SdclPromptSegment *seg = &g_array_index (got, SdclPromptSegment, j);
          g_string_append_printf (s, " (\"%s\", %.4f)", seg->text, seg->weight);
        }
      g_test_message ("\"%s\" ->%s", c->prompt, s->str);
      g_assert_cmpuint (got->len, ==, c->n);
      for (guint j = 0; j < c->n; j++)
        {
          const SdclPromptSegment *seg = &g_array_index (got, SdclPromptSegment, j);
          g_assert_cmpstr (seg->text, ==, c->seg[j].text);
          g_assert_cmpfloat_with_epsilon (seg->weight, c->seg[j].weight, 1e-9);
        }
    }
}

/* ---- chunks ------------------------------------------------------------------------- */

static SdclPromptChunks *
chunks (const gchar *prompt, guint min)
{
  g_autoptr (GError) error = NULL;
  SdclPromptChunks *c = sdcl_prompt_chunks_new (prompt, min, &error);
  g_assert_no_error (error);
  return c;
}

/* Checks that chunk k is start, `ids` (n of them), then end padding. */
static void
assert_chunk (const SdclPromptChunks *c, guint k, const gint32 *ids, guint n)
{
  g_assert_cmpuint (k, <, c->n_chunks);
  const gint32 *row = c->ids + k * SDCL_CLIP_CONTEXT;
  g_assert_cmpint (row[0], ==, SDCL_CLIP_START);
  for (guint i = 0; i < n; i++)
    g_assert_cmpint (row[1 + i], ==, ids[i]);
  for (guint i = 1 + n; i < SDCL_CLIP_CONTEXT; i++)
    g_assert_cmpint (row[i], ==, SDCL_CLIP_END);
}

static gchar *
repeat (const gchar *word, guint n, const gchar *sep)
{
  g_autoptr (GString) s = g_string_new (NULL);
  for (guint i = 0; i < n; i++)
    g_string_append_printf (s, "%s%s", i ? sep : "", word);
  return g_string_free (g_steal_pointer (&s), FALSE);
}

static void
test_chunks (void)
{
  const gint32 a = single_id ("a"), b = single_id ("b"), comma = single_id (",");
  gint32 row[SDCL_PROMPT_CHUNK];

  /* empty: one chunk of start and end */
  {
    g_autoptr (SdclPromptChunks) c = chunks ("", 1);
    g_assert_cmpuint (c->n_chunks, ==, 1);
    g_assert_cmpuint (c->n_tokens, ==, 0);
    assert_chunk (c, 0, NULL, 0);
  }
  /* exactly 75 tokens: one chunk; 76: two */
  for (guint n = 75; n <= 76; n++)
    {
      g_autofree gchar *p = repeat ("a", n, " ");
      g_autoptr (SdclPromptChunks) c = chunks (p, 1);
      g_assert_cmpuint (c->n_chunks, ==, n == 75 ? 1 : 2);
      for (guint i = 0; i < 75; i++)
        row[i] = a;
      assert_chunk (c, 0, row, 75);
      if (n == 76)
        assert_chunk (c, 1, row, 1);
    }
  /* a comma 5 tokens before a full chunk's end: what follows it moves on */
  {
    g_autofree gchar *as = repeat ("a", 70, " ");
    g_autofree gchar *bs = repeat ("b", 10, " ");
    g_autofree gchar *p = g_strdup_printf ("%s, %s", as, bs);
    g_autoptr (SdclPromptChunks) c = chunks (p, 1);
    g_assert_cmpuint (c->n_chunks, ==, 2);
    for (guint i = 0; i < 70; i++)
      row[i] = a;
    row[70] = comma;
    assert_chunk (c, 0, row, 71);
    for (guint i = 0; i < 10; i++)
      row[i] = b;
    assert_chunk (c, 1, row, 10);
  }
  /* a comma 25 tokens back is too far: the chunk is cut at 75 */
  {
    g_autofree gchar *as = repeat ("a", 50, " ");
    g_autofree gchar *bs = repeat ("b", 40, " ");
    g_autofree gchar *p = g_strdup_printf ("%s, %s", as, bs);
    g_autoptr (SdclPromptChunks) c = chunks (p, 1);
    g_assert_cmpuint (c->n_chunks, ==, 2);
    for (guint i = 0; i < 50; i++)
      row[i] = a;
    row[50] = comma;
    for (guint i = 51; i < 75; i++)
      row[i] = b;
    assert_chunk (c, 0, row, 75);
    for (guint i = 0; i < 16; i++)
      row[i] = b;
    assert_chunk (c, 1, row, 16);
  }
  /* BREAK ends a chunk early */
  {
    g_autoptr (SdclPromptChunks) c = chunks ("a BREAK b", 1);
    g_assert_cmpuint (c->n_chunks, ==, 2);
    assert_chunk (c, 0, &a, 1);
    assert_chunk (c, 1, &b, 1);
  }
  /* padded to a minimum number of chunks with empty ones */
  {
    g_autoptr (SdclPromptChunks) c = chunks ("a", 3);
    g_assert_cmpuint (c->n_chunks, ==, 3);
    assert_chunk (c, 0, &a, 1);
    assert_chunk (c, 1, NULL, 0);
    assert_chunk (c, 2, NULL, 0);
  }
  /* a comma right at the end of a full chunk: nothing to move */
  {
    g_autofree gchar *as = repeat ("a", 74, " ");
    g_autofree gchar *p = g_strdup_printf ("%s, b", as);
    g_autoptr (SdclPromptChunks) c = chunks (p, 1);
    g_assert_cmpuint (c->n_chunks, ==, 2);
    for (guint i = 0; i < 74; i++)
      row[i] = a;
    row[74] = comma;
    assert_chunk (c, 0, row, 75);
    assert_chunk (c, 1, &b, 1);
  }
  /* the moved tokens keep their weights */
  {
    g_autofree gchar *as = repeat ("a", 70, " ");
    g_autofree gchar *bs = repeat ("b", 10, " ");
    g_autofree gchar *p = g_strdup_printf ("%s, (%s:1.5)", as, bs);
    g_autoptr (SdclPromptChunks) c = chunks (p, 1);
    g_assert_cmpuint (c->n_chunks, ==, 2);
    for (guint i = 0; i < SDCL_CLIP_CONTEXT; i++)
      {
        g_assert_cmpfloat (c->weights[i], ==, 1.0f);
        g_assert_cmpfloat (c->weights[SDCL_CLIP_CONTEXT + i], ==, i >= 1 && i <= 10 ? 1.5f : 1.0f);
      }
  }
  /* BREAK at the end adds no empty chunk; BREAK alone gives one chunk;
   * BREAK inside brackets is the word "break" (its weight is no longer -1) */
  {
    g_autoptr (SdclPromptChunks) end = chunks ("a BREAK", 1);
    g_assert_cmpuint (end->n_chunks, ==, 1);
    assert_chunk (end, 0, &a, 1);
    g_autoptr (SdclPromptChunks) alone = chunks ("BREAK", 1);
    g_assert_cmpuint (alone->n_chunks, ==, 1);
    assert_chunk (alone, 0, NULL, 0);
    g_autoptr (SdclPromptChunks) start = chunks ("BREAK a", 1);
    g_assert_cmpuint (start->n_chunks, ==, 2);
    assert_chunk (start, 0, NULL, 0);
    assert_chunk (start, 1, &a, 1);
    g_autoptr (SdclPromptChunks) inside = chunks ("(a BREAK b)", 1);
    const gint32 word[3] = { a, single_id ("break"), b };
    g_assert_cmpuint (inside->n_chunks, ==, 1);
    assert_chunk (inside, 0, word, 3);
    /* and keeps its segment's weight, -1 × 1.1, as in A1111 */
    g_assert_cmpfloat_with_epsilon (inside->weights[1], 1.1, 1e-6);
    g_assert_cmpfloat_with_epsilon (inside->weights[2], -1.1, 1e-6);
    g_assert_cmpfloat_with_epsilon (inside->weights[3], 1.1, 1e-6);
  }
  /* a long prompt without commas: full chunks of 75 in the text's order */
  {
    g_autofree gchar *p = repeat ("a highly detailed matte painting of an ancient castle", 40, " ");
    g_autoptr (GArray) ids = encode (p);
    g_assert_cmpuint (ids->len, >, 300);
    g_autoptr (SdclPromptChunks) c = chunks (p, 1);
    g_assert_cmpuint (c->n_tokens, ==, ids->len);
    g_assert_cmpuint (c->n_chunks, ==, (ids->len + SDCL_PROMPT_CHUNK - 1) / SDCL_PROMPT_CHUNK);
    for (guint k = 0; k < c->n_chunks; k++)
      {
        const guint n = MIN (SDCL_PROMPT_CHUNK, ids->len - k * SDCL_PROMPT_CHUNK);
        assert_chunk (c, k, &g_array_index (ids, gint32, k * SDCL_PROMPT_CHUNK), n);
      }
    /* the negative prompt padded to the same count */
    g_autoptr (SdclPromptChunks) neg = chunks ("blurry", c->n_chunks);
    g_assert_cmpuint (neg->n_chunks, ==, c->n_chunks);
  }
  /* weights follow their tokens; start, end and padding weigh 1 */
  {
    g_autoptr (SdclPromptChunks) c = chunks ("(a) [b] a", 1);
    const gfloat want[5] = { 1.0f, 1.1f, (gfloat) (1 / 1.1), 1.0f, 1.0f };
    for (guint i = 0; i < 5; i++)
      g_assert_cmpfloat_with_epsilon (c->weights[i], want[i], 1e-6);
    for (guint i = 5; i < SDCL_CLIP_CONTEXT; i++)
      g_assert_cmpfloat (c->weights[i], ==, 1.0f);
  }
}

/* ---- threads and locale ------------------------------------------------------------ */

static gpointer
encode_golden_words (gpointer data)
{
  const gchar *text = data;
  g_autoptr (GArray) first = encode (text);
  for (guint i = 0; i < 50; i++)
    {
      g_autoptr (GArray) again = encode (text);
      if (again->len != first->len || memcmp (again->data, first->data, first->len * 4) != 0)
        return GINT_TO_POINTER (1);
    }
  return NULL;
}

/* the word cache is shared: threads encoding at once agree */
static void
test_threads (void)
{
  static const gchar *texts[] = {
    "a photograph of an astronaut riding a horse", "東京タワーの夜景 🐱‍👤",
    "masterpiece, best quality, supercalifragilisticexpialidocious", "ΟΔΥΣΣΕΥΣ Ångström",
  };
  GThread *threads[G_N_ELEMENTS (texts)];
  for (guint i = 0; i < G_N_ELEMENTS (texts); i++)
    threads[i] = g_thread_new ("encode", encode_golden_words, (gpointer) texts[i]);
  for (guint i = 0; i < G_N_ELEMENTS (texts); i++)
    g_assert_null (g_thread_join (threads[i]));
}

/* lower case does not follow the locale (GLib's g_utf8_strdown would give
 * Turkish "ı" for "I") */
static void
test_locale (void)
{
  g_autoptr (GArray) c_ids = encode ("I İ Istanbul");
  g_autofree gchar *old = g_strdup (setlocale (LC_CTYPE, NULL));
  if (!setlocale (LC_CTYPE, "tr_TR.UTF-8"))
    {
      g_test_skip ("no tr_TR.UTF-8 locale");
      return;
    }
  g_autoptr (GArray) tr_ids = encode ("I İ Istanbul");
  setlocale (LC_CTYPE, old);
  g_assert_cmpmem (tr_ids->data, tr_ids->len * 4, c_ids->data, c_ids->len * 4);
}

/* ---- fuzz ------------------------------------------------------------------------ */

int sdcl_fuzz_tokenizer (const guint8 *data, gsize size);

static void
test_fuzz (void)
{
  /* seeded mutations of prompt-like text, through the fuzz entry point */
  static const gchar *seeds[] = {
    "a (b:1.2) [c] BREAK d, e", "東京 🙂 \\(x\\)", "((((((((a", "]]]]))))::::", "",
    "(a:1.2.3) (b: \u0661.5 ) ΟΔΥΣ\u180e x_BREAK <|endoftext|>", "a, b, c, d, e, f, g, h",
  };
  guint32 state = 12345;
  for (guint round = 0; round < 2000; round++)
    {
      const gchar *seed = seeds[round % G_N_ELEMENTS (seeds)];
      gsize n = strlen (seed);
      g_autofree guint8 *buf = g_malloc (n + 16);
      memcpy (buf, seed, n);
      for (guint k = 0; k < 4; k++)
        {
          state = sdcl_test_hash (state + round);
          const gsize at = n ? state % (n + 1) : 0;
          const guint8 byte = state >> 24;
          if ((state >> 8) % 3 == 0 && n < n + 15)
            {
              memmove (buf + at + 1, buf + at, n - at);
              buf[at] = byte;
              n++;
            }
          else if (n && at < n)
            buf[at] = byte;
        }
      sdcl_fuzz_tokenizer (buf, n);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_autoptr (GError) error = NULL;
  tok = sdcl_tokenizer_get (&error);
  g_assert_no_error (error);
  g_assert_cmpuint (sdcl_tokenizer_vocab_size (tok), ==, 49408);
  g_test_add_func ("/tokenizer/golden", test_golden);
  g_test_add_func ("/tokenizer/round-trip", test_round_trip);
  g_test_add_func ("/tokenizer/invalid-utf8", test_invalid_utf8);
  g_test_add_func ("/tokenizer/long-text", test_long_text);
  g_test_add_func ("/tokenizer/threads", test_threads);
  g_test_add_func ("/tokenizer/locale", test_locale);
  g_test_add_func ("/prompt/emphasis", test_parse);
  g_test_add_func ("/prompt/chunks", test_chunks);
  g_test_add_func ("/prompt/fuzz", test_fuzz);
  return g_test_run ();
}
