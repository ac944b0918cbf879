/* test-safetensors.c — the safetensors reader and writer: round trips,
 * conversions, a file from the reference writer, one test per kind of
 * malformed file (error code and message), and seeded mutations run through
 * the fuzz entry point. Needs no OpenCL device.
 */
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput (const guint8 *data, gsize size);

static gchar *scratch;   /* temporary folder for the files the tests write */

/* ---- helpers ------------------------------------------------------------- */

static gchar *
scratch_path (const gchar *name)
{
  return g_build_filename (scratch, name, NULL);
}

static void
write_scratch (const gchar *name, GBytes *bytes)
{
  g_autofree gchar *path = scratch_path (name);
  g_autoptr (GError) error = NULL;
  gsize len = 0;
  const gchar *p = g_bytes_get_data (bytes, &len);
  g_file_set_contents (path, p ? p : "", (gssize) len, &error);
  g_assert_no_error (error);
}

/* 8-byte little-endian length, then `header` as is (no padding: malformed
 * files need not follow the writer's habits), then `data_len` bytes. */
static GBytes *
raw_file (const gchar *header, gsize data_len)
{
  gsize n = strlen (header);
  GByteArray *a = g_byte_array_new ();
  guint64 le = GUINT64_TO_LE ((guint64) n);
  g_byte_array_append (a, (const guint8 *) &le, 8);
  g_byte_array_append (a, (const guint8 *) header, (guint) n);
  for (gsize i = 0; i < data_len; i++)
    {
      guint8 b = (guint8) (i * 37 + 11);
      g_byte_array_append (a, &b, 1);
    }
  return g_byte_array_free_to_bytes (a);
}

static GBytes *
bytes_of (const void *p, gsize n)
{
  return g_bytes_new (p, n);
}

/* A file with one tensor of each float kind, an I64 and metadata. */
static const gfloat  w_f32[6]  = { 1.5f, -2.25f, 0.0f, 3.0e-8f, 65536.0f, -0.125f };
static const guint16 w_f16[4]  = { 0x3c00, 0xc000, 0x3800, 0x7bff };   /* 1, -2, 0.5, 65504 */
static const guint16 w_bf16[4] = { 0x3f80, 0xc040, 0x4049, 0x0000 };   /* 1, -3, 3.140625, 0 */
static const gint64  w_i64[3]  = { 0, -7, 16777216 };

static SdclSafetensorsWriter *
sample_writer (void)
{
  g_autoptr (GError) error = NULL;
  SdclSafetensorsWriter *w = sdcl_safetensors_writer_new ();
  const gint64 s_f32[] = { 2, 3 }, s_f16[] = { 4 }, s_bf16[] = { 2, 2 }, s_i64[] = { 3 };
  /* Added out of layout order, so the writer's sorting is exercised. */
  g_assert_true (sdcl_safetensors_writer_add (w, "small.f16", SDCL_ST_F16, 1, s_f16, w_f16,
                                              sizeof w_f16, &error));
  g_assert_true (sdcl_safetensors_writer_add (w, "idx", SDCL_ST_I64, 1, s_i64, w_i64,
                                              sizeof w_i64, &error));
  g_assert_true (sdcl_safetensors_writer_add (w, "weight", SDCL_ST_F32, 2, s_f32, w_f32,
                                              sizeof w_f32, &error));
  g_assert_true (sdcl_safetensors_writer_add (w, "bf", SDCL_ST_BF16, 2, s_bf16, w_bf16,
                                              sizeof w_bf16, &error));
  g_assert_no_error (error);
  sdcl_safetensors_writer_set_metadata (w, "format", "pt");
  sdcl_safetensors_writer_set_metadata (w, "note", "caf\xc3\xa9 \"quoted\" \\ back");
  return w;
}

static GBytes *
sample_bytes (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclSafetensorsWriter) w = sample_writer ();
  GBytes *b = sdcl_safetensors_writer_to_bytes (w, &error);
  g_assert_no_error (error);
  return b;
}

/* ---- round trip ----------------------------------------------------------- */

static void
check_sample (SdclSafetensors *st)
{
  g_autoptr (GError) error = NULL;
  g_assert_cmpuint (sdcl_safetensors_n_tensors (st), ==, 4);

  struct { const gchar *name; SdclSafetensorsDtype dtype; guint n_dims; gint64 shape[2];
           gconstpointer data; gsize n_bytes; } want[] = {
    { "weight", SDCL_ST_F32, 2, { 2, 3 }, w_f32, sizeof w_f32 },
    { "small.f16", SDCL_ST_F16, 1, { 4 }, w_f16, sizeof w_f16 },
    { "bf", SDCL_ST_BF16, 2, { 2, 2 }, w_bf16, sizeof w_bf16 },
    { "idx", SDCL_ST_I64, 1, { 3 }, w_i64, sizeof w_i64 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (want); i++)
    {
      const SdclSafetensorsEntry *e = sdcl_safetensors_get (st, want[i].name);
      g_assert_nonnull (e);
      g_assert_cmpstr (e->name, ==, want[i].name);
      g_assert_cmpint (e->dtype, ==, want[i].dtype);
      g_assert_cmpuint (e->n_dims, ==, want[i].n_dims);
      for (guint d = 0; d < e->n_dims; d++)
        g_assert_cmpint (e->shape[d], ==, want[i].shape[d]);
      g_assert_cmpuint (e->n_bytes, ==, want[i].n_bytes);
      g_assert_cmpmem (e->data, e->n_bytes, want[i].data, want[i].n_bytes);
      /* The writer keeps every tensor aligned to its element size. */
      g_assert_cmpuint (e->offset % sdcl_safetensors_dtype_size (e->dtype), ==, 0);
    }
  g_assert_null (sdcl_safetensors_get (st, "absent"));
  g_assert_null (sdcl_safetensors_get (st, "__metadata__"));

  /* File order is by offset; name order by strcmp. */
  for (guint i = 1; i < 4; i++)
    {
      g_assert_cmpuint (sdcl_safetensors_nth (st, i - 1)->offset, <,
                        sdcl_safetensors_nth (st, i)->offset);
      g_assert_cmpint (strcmp (sdcl_safetensors_nth_by_name (st, i - 1)->name,
                               sdcl_safetensors_nth_by_name (st, i)->name), <, 0);
    }
  g_assert_cmpstr (sdcl_safetensors_nth_by_name (st, 0)->name, ==, "bf");
  /* Largest elements first: the 8-byte I64 leads the data section. */
  g_assert_cmpstr (sdcl_safetensors_nth (st, 0)->name, ==, "idx");
  g_assert_cmpuint (sdcl_safetensors_nth (st, 0)->offset, ==, 0);

  g_assert_cmpstr (sdcl_safetensors_metadata (st, "format"), ==, "pt");
  g_assert_cmpstr (sdcl_safetensors_metadata (st, "note"), ==, "caf\xc3\xa9 \"quoted\" \\ back");
  g_assert_null (sdcl_safetensors_metadata (st, "absent"));
  g_assert_cmpuint (g_hash_table_size (sdcl_safetensors_metadata_table (st)), ==, 2);

  g_autofree gchar *desc = sdcl_safetensors_entry_describe (sdcl_safetensors_get (st, "weight"));
  g_assert_cmpstr (desc, ==, "[2, 3] F32");
}

static void
test_roundtrip (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclSafetensorsWriter) w = sample_writer ();
  g_autofree gchar *path = scratch_path ("roundtrip.safetensors");
  g_assert_true (sdcl_safetensors_writer_save (w, path, &error));
  g_assert_no_error (error);

  /* The saved file and the in-memory one are the same bytes. */
  g_autoptr (GBytes) mem = sdcl_safetensors_writer_to_bytes (w, &error);
  g_assert_no_error (error);
  g_autofree gchar *contents = NULL;
  gsize len = 0;
  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  g_assert_cmpmem (contents, len, g_bytes_get_data (mem, NULL), g_bytes_get_size (mem));

  /* Header padded with spaces to a multiple of 8, as the reference does. */
  guint64 n;
  memcpy (&n, contents, 8);
  n = GUINT64_FROM_LE (n);
  g_assert_cmpuint (n % 8, ==, 0);
  g_assert_cmpint (contents[8], ==, '{');
  gsize json_end = n;
  while (json_end > 0 && contents[8 + json_end - 1] == ' ')
    json_end--;
  g_assert_cmpint (contents[8 + json_end - 1], ==, '}');
  g_assert_cmpuint (n - json_end, <, 8);

  g_autoptr (SdclSafetensors) st = sdcl_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (sdcl_safetensors_name (st), ==, "roundtrip.safetensors");
  check_sample (st);

  g_autoptr (SdclSafetensors) st_mem = sdcl_safetensors_open_bytes (mem, "mem", &error);
  g_assert_no_error (error);
  check_sample (st_mem);

  /* Saving again replaces the file in place. */
  g_assert_true (sdcl_safetensors_writer_save (w, path, &error));
  g_assert_no_error (error);
}

static void
test_read_f32 (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) b = sample_bytes ();
  g_autoptr (SdclSafetensors) st = sdcl_safetensors_open_bytes (b, "sample", &error);
  g_assert_no_error (error);
  gint64 n = 0;

  g_autofree gfloat *f32 = sdcl_safetensors_read_f32 (st, "weight", &n, &error);
  g_assert_no_error (error);
  g_assert_cmpint (n, ==, 6);
  g_assert_cmpmem (f32, sizeof w_f32, w_f32, sizeof w_f32);

  g_autofree gfloat *f16 = sdcl_safetensors_read_f32 (st, "small.f16", &n, &error);
  g_assert_no_error (error);
  g_assert_cmpint (n, ==, 4);
  const gfloat want_f16[] = { 1.0f, -2.0f, 0.5f, 65504.0f };
  for (int i = 0; i < 4; i++)
    g_assert_cmpfloat (f16[i], ==, want_f16[i]);

  g_autofree gfloat *bf = sdcl_safetensors_read_f32 (st, "bf", &n, &error);
  g_assert_no_error (error);
  const gfloat want_bf[] = { 1.0f, -3.0f, 3.140625f, 0.0f };
  for (int i = 0; i < 4; i++)
    g_assert_cmpfloat (bf[i], ==, want_bf[i]);

  /* Integers convert when exact: indices and shapes are read this way. */
  g_autofree gfloat *idx = sdcl_safetensors_read_f32 (st, "idx", &n, &error);
  g_assert_no_error (error);
  g_assert_cmpint (n, ==, 3);
  g_assert_cmpfloat (idx[0], ==, 0.0f);
  g_assert_cmpfloat (idx[1], ==, -7.0f);
  g_assert_cmpfloat (idx[2], ==, 16777216.0f);

  /* F16 directly, and F32 rounded to F16. */
  g_autofree guint16 *h = sdcl_safetensors_read_f16 (st, "small.f16", &n, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (h, 8, w_f16, sizeof w_f16);
  g_autofree guint16 *h32 = sdcl_safetensors_read_f16 (st, "weight", &n, &error);
  g_assert_no_error (error);
  g_assert_cmphex (h32[0], ==, 0x3e00);      /* 1.5 */
  g_assert_cmphex (h32[1], ==, 0xc080);      /* -2.25 */
  g_assert_cmphex (h32[4], ==, 0x7c00);      /* 65536 overflows to inf */

  /* Absent tensors are NOT_FOUND and name the tensor. */
  g_autofree gfloat *none = sdcl_safetensors_read_f32 (st, "nope", &n, &error);
  g_assert_null (none);
  g_assert_error (error, SDCL_SAFETENSORS_ERROR, SDCL_SAFETENSORS_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "'nope'"));
}

/* Values a float cannot hold exactly, and every other dtype's conversion. */
static void
test_read_f32_dtypes (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclSafetensorsWriter) w = sdcl_safetensors_writer_new ();
  const gint64 s2[] = { 2 }, s3[] = { 3 };
  const gint64 big[] = { 1, 16777217 };
  const gdouble f64[] = { 0.1, 1e300 };
  const gint32 i32[] = { -5, 7, 1 << 20 };
  const guint32 u32[] = { 3, 4294967295u };
  const gint16 i16[] = { -32768, 2, 3 };
  const guint16 u16[] = { 65535, 1 };
  const gint8 i8[] = { -128, 127 };
  const guint8 u8[] = { 255, 0, 9 };
  const guint8 bools[] = { 0, 1, 2 };
  const guint64 u64[] = { G_GUINT64_CONSTANT (1) << 63, 5 };
  const gfloat scalar = 42.0f;
  g_assert_true (sdcl_safetensors_writer_add (w, "big", SDCL_ST_I64, 1, s2, big, sizeof big, &error));
  g_assert_true (sdcl_safetensors_writer_add (w, "f64", SDCL_ST_F64, 1, s2, f64, sizeof f64, &error));
  g_assert_true (sdcl_safetensors_writer_add (w, "i32", SDCL_ST_I32, 1, s3, i32, sizeof i32, &error));
  g_assert_true (sdcl_safetensors_writer_add (w, "u32", SDCL_ST_U32, 1, s2, u32, sizeof u32, &error));
  g_assert_true (sdcl_safetensors_writer_add (w, "i16", SDCL_ST_I16, 1, s3, i16, sizeof i16, &error));
  g_assert_true (sdcl_safetensors_writer_add (w, "u16", SDCL_ST_U16, 1, s2, u16, sizeof u16, &error));
  g_assert_true (sdcl_safetensors_writer_add (w, "i8", SDCL_ST_I8, 1, s2, i8, sizeof i8, &error));
  g_assert_true (sdcl_safetensors_writer_add (w, "u8", SDCL_ST_U8, 1, s3, u8, sizeof u8, &error));
  g_assert_true (sdcl_safetensors_writer_add (w, "bool", SDCL_ST_BOOL, 1, s3, bools, sizeof bools, &error));
  g_assert_true (sdcl_safetensors_writer_add (w, "u64", SDCL_ST_U64, 1, s2, u64, sizeof u64, &error));
  g_assert_true (sdcl_safetensors_writer_add (w, "scalar", SDCL_ST_F32, 0, NULL, &scalar, 4, &error));
  const gint64 s0[] = { 0, 5 };
  g_assert_true (sdcl_safetensors_writer_add (w, "empty", SDCL_ST_F16, 2, s0, NULL, 0, &error));
  g_autoptr (GBytes) b = sdcl_safetensors_writer_to_bytes (w, &error);
  g_assert_no_error (error);
  g_autoptr (SdclSafetensors) st = sdcl_safetensors_open_bytes (b, "dtypes", &error);
  g_assert_no_error (error);
  gint64 n = -1;

  g_autofree gfloat *v_big = sdcl_safetensors_read_f32 (st, "big", &n, &error);
  g_assert_null (v_big);
  g_assert_error (error, SDCL_SAFETENSORS_ERROR, SDCL_SAFETENSORS_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "index 1"));
  g_clear_error (&error);

  g_autofree gfloat *v_u32 = sdcl_safetensors_read_f32 (st, "u32", &n, &error);
  g_assert_null (v_u32);
  g_assert_error (error, SDCL_SAFETENSORS_ERROR, SDCL_SAFETENSORS_ERROR_UNSUPPORTED);
  g_clear_error (&error);

  g_autofree gfloat *v_f64 = sdcl_safetensors_read_f32 (st, "f64", &n, &error);
  g_assert_no_error (error);
  g_assert_cmpfloat (v_f64[0], ==, 0.1f);
  g_assert_true (isinf (v_f64[1]) && v_f64[1] > 0);

#define CHECK_INTS(name, count, ...)                                             \
  G_STMT_START {                                                                 \
    const gfloat want[] = { __VA_ARGS__ };                                       \
    g_autofree gfloat *v = sdcl_safetensors_read_f32 (st, name, &n, &error);     \
    g_assert_no_error (error);                                                   \
    g_assert_cmpint (n, ==, count);                                              \
    for (int i = 0; i < count; i++)                                              \
      g_assert_cmpfloat (v[i], ==, want[i]);                                     \
  } G_STMT_END
  CHECK_INTS ("i32", 3, -5, 7, 1048576);
  CHECK_INTS ("i16", 3, -32768, 2, 3);
  CHECK_INTS ("u16", 2, 65535, 1);
  CHECK_INTS ("i8", 2, -128, 127);
  CHECK_INTS ("u8", 3, 255, 0, 9);
  CHECK_INTS ("bool", 3, 0, 1, 1);
  CHECK_INTS ("u64", 2, 9223372036854775808.0f, 5);
  CHECK_INTS ("scalar", 1, 42);
#undef CHECK_INTS

  const SdclSafetensorsEntry *sc = sdcl_safetensors_get (st, "scalar");
  g_assert_cmpuint (sc->n_dims, ==, 0);
  g_assert_cmpint (sc->numel, ==, 1);

  /* An empty tensor reads as a non-NULL buffer of 0 values. */
  g_autofree gfloat *v_empty = sdcl_safetensors_read_f32 (st, "empty", &n, &error);
  g_assert_no_error (error);
  g_assert_nonnull (v_empty);
  g_assert_cmpint (n, ==, 0);
}

/* The fixture made by make_op_fixtures.py with the reference writer
 * (safetensors.torch.save_file). */
static void
test_reference_file (void)
{
  g_autofree gchar *path = g_build_filename (SDCL_FIXTURES_DIR, "ops-large.safetensors", NULL);
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_test_skip ("tests/fixtures/ops-large.safetensors is missing");
      return;
    }
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclSafetensors) st = sdcl_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (sdcl_safetensors_n_tensors (st), >, 0);
  /* The reference packs tensors without gaps from offset 0. */
  gsize expect = 0;
  for (guint i = 0; i < sdcl_safetensors_n_tensors (st); i++)
    {
      const SdclSafetensorsEntry *e = sdcl_safetensors_nth (st, i);
      g_assert_cmpuint (e->offset, ==, expect);
      expect += e->n_bytes;
      gint64 n = 0;
      g_autofree gfloat *v = sdcl_safetensors_read_f32 (st, e->name, &n, &error);
      g_assert_no_error (error);
      g_assert_cmpint (n, ==, e->numel);
    }
}

/* A real header of 0x280 bytes starts with 80 02, as a pickle does; it must
 * open, not be taken for a checkpoint. */
static void
test_pickle_lookalike (void)
{
  GString *h = g_string_new ("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}");
  while (h->len < 0x280)
    g_string_append_c (h, ' ');
  g_autoptr (GBytes) b = raw_file (h->str, 1);
  g_string_free (h, TRUE);
  g_assert_cmphex (((const guint8 *) g_bytes_get_data (b, NULL))[0], ==, 0x80);
  g_assert_cmphex (((const guint8 *) g_bytes_get_data (b, NULL))[1], ==, 0x02);
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclSafetensors) st = sdcl_safetensors_open_bytes (b, "lookalike", &error);
  g_assert_no_error (error);
  g_assert_nonnull (sdcl_safetensors_get (st, "a"));
}

/* Valid but unusual: no tensors, gaps between tensors, bytes after the
 * last one, zero-size tensors anywhere, names that need escaping. */
static void
test_unusual_but_valid (void)
{
  static const struct { const gchar *header; gsize data_len; guint n; } cases[] = {
    { "{}", 0, 0 },
    { "{\"__metadata__\":{}}  ", 0, 0 },
    { "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 10, 2 },
    { "{\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[2,2]},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4, 2 },
    { "{\"w\\u00e9\\\"q\":{\"dtype\":\"I8\",\"shape\":[],\"data_offsets\":[0,1],\"extra\":1}}", 1, 1 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GBytes) b = raw_file (cases[i].header, cases[i].data_len);
      g_autoptr (GError) error = NULL;
      g_autoptr (SdclSafetensors) st = sdcl_safetensors_open_bytes (b, "unusual", &error);
      g_assert_no_error (error);
      g_assert_cmpuint (sdcl_safetensors_n_tensors (st), ==, cases[i].n);
    }
  g_autoptr (GBytes) b = raw_file (cases[4].header, 1);
  g_autoptr (SdclSafetensors) st = sdcl_safetensors_open_bytes (b, "unusual", NULL);
  g_assert_nonnull (sdcl_safetensors_get (st, "w\xc3\xa9\"q"));
}

static void
test_writer_errors (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclSafetensorsWriter) w = sdcl_safetensors_writer_new ();
  const gint64 shape[] = { 2 }, negative[] = { -1 };
  const gfloat data[2] = { 1, 2 };
  const gint64 nine[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };

  g_assert_true (sdcl_safetensors_writer_add (w, "a", SDCL_ST_F32, 1, shape, data, 8, &error));
  g_assert_false (sdcl_safetensors_writer_add (w, "a", SDCL_ST_F32, 1, shape, data, 8, &error));
  g_assert_error (error, SDCL_SAFETENSORS_ERROR, SDCL_SAFETENSORS_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "added twice"));
  g_clear_error (&error);

  g_assert_false (sdcl_safetensors_writer_add (w, "b", SDCL_ST_F32, 1, shape, data, 4, &error));
  g_assert_nonnull (strstr (error->message, "do not fit shape [2]"));
  g_clear_error (&error);
  g_assert_false (sdcl_safetensors_writer_add (w, "c", SDCL_ST_F32, 1, negative, data, 4, &error));
  g_assert_error (error, SDCL_SAFETENSORS_ERROR, SDCL_SAFETENSORS_ERROR_CORRUPT);
  g_clear_error (&error);
  g_assert_false (sdcl_safetensors_writer_add (w, "__metadata__", SDCL_ST_F32, 1, shape, data, 8,
                                               &error));
  g_assert_nonnull (strstr (error->message, "reserved"));
  g_clear_error (&error);
  g_assert_false (sdcl_safetensors_writer_add (w, "d", SDCL_ST_F32, 9, nine, data, 4, &error));
  g_assert_nonnull (strstr (error->message, "at most 8"));
  g_clear_error (&error);

  /* Nothing refused was kept. */
  g_autoptr (GBytes) b = sdcl_safetensors_writer_to_bytes (w, &error);
  g_assert_no_error (error);
  g_autoptr (SdclSafetensors) st = sdcl_safetensors_open_bytes (b, "w", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (sdcl_safetensors_n_tensors (st), ==, 1);
}

static void
test_io_errors (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *missing = scratch_path ("no-such-file.safetensors");
  g_autoptr (SdclSafetensors) st = sdcl_safetensors_open (missing, &error);
  g_assert_null (st);
  g_assert_error (error, SDCL_SAFETENSORS_ERROR, SDCL_SAFETENSORS_ERROR_IO);
  g_assert_true (g_str_has_prefix (error->message, "no-such-file.safetensors: cannot open"));
  g_clear_error (&error);

  g_autoptr (SdclSafetensorsWriter) w = sample_writer ();
  g_autofree gchar *bad = scratch_path ("no-such-dir/out.safetensors");
  g_assert_false (sdcl_safetensors_writer_save (w, bad, &error));
  g_assert_error (error, SDCL_SAFETENSORS_ERROR, SDCL_SAFETENSORS_ERROR_IO);
  g_assert_true (g_str_has_prefix (error->message, "out.safetensors: "));
}

/* ---- malformed files ------------------------------------------------------ */

typedef struct
{
  const gchar *path;        /* test path under /safetensors/malformed/ */
  const gchar *header;      /* raw_file (header, data_len), or NULL to use make */
  gsize        data_len;
  GBytes    *(*make) (void);
  gint         code;
  const gchar *phrase;      /* must appear in the message */
} MalformedCase;

static GBytes *make_empty (void) { return g_bytes_new (NULL, 0); }
static GBytes *make_short (void) { return bytes_of ("\x05\x00\x00\x00\x00", 5); }
static GBytes *make_len_zero (void) { return bytes_of ("\0\0\0\0\0\0\0\0{}", 10); }

static GBytes *
make_len_past_end (void)
{
  return bytes_of ("\xe8\x03\0\0\0\0\0\0{}      ", 16);     /* says 1000 bytes */
}

static GBytes *
make_len_over_limit (void)
{
  return bytes_of ("\x00\xc2\xeb\x0b\0\0\0\0{}      ", 16);  /* says 200,000,000 */
}

static GBytes *
make_truncated (void)
{
  g_autoptr (GBytes) whole = sample_bytes ();
  return g_bytes_new_from_bytes (whole, 0, g_bytes_get_size (whole) - 3);
}

static GBytes *
make_zip (void)
{
  /* The start of a torch.save() zip: a local file header for data.pkl. */
  static const guint8 zip[] = "PK\x03\x04\x00\x00\x08\x08\x00\x00\x00\x00\x00\x00\x00\x00"
                              "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10\x00\x12\x00"
                              "archive/data.pklFB\x0e\x00" "ZZZZZZZZZZZZZZ\x80\x02}q\x00";
  return bytes_of (zip, sizeof zip - 1);
}

static GBytes *
make_pickle (void)
{
  /* A legacy torch.save(): pickle protocol 2, then the magic number. */
  static const guint8 pkl[] = "\x80\x02\x8a\x0al\xfc\x9c" "F\xf9 j\xa8P\x19.\x80\x02M\xe9\x03.";
  return bytes_of (pkl, sizeof pkl - 1);
}

static GBytes *
make_bad_utf8 (void)
{
  return raw_file ("{\"\xff\xfe\":{}}", 0);
}

static GBytes *
make_nul_in_header (void)
{
  return bytes_of ("\x08\0\0\0\0\0\0\0{}\0\0\0\0\0\0", 16);
}

#define T(fields) "\"t\":{" fields "}"
#define F32x2 "\"dtype\":\"F32\",\"shape\":[2]"

static const MalformedCase malformed[] = {
  { "empty-file", NULL, 0, make_empty, SDCL_SAFETENSORS_ERROR_CORRUPT, "is empty" },
  { "shorter-than-8", NULL, 0, make_short, SDCL_SAFETENSORS_ERROR_CORRUPT, "too short" },
  { "header-length-zero", NULL, 0, make_len_zero, SDCL_SAFETENSORS_ERROR_CORRUPT,
    "header length is 0" },
  { "header-too-long", NULL, 0, make_len_past_end, SDCL_SAFETENSORS_ERROR_CORRUPT,
    "header length 1,000 bytes exceeds the 8 bytes that follow it" },
  { "header-over-limit", NULL, 0, make_len_over_limit, SDCL_SAFETENSORS_ERROR_CORRUPT,
    "200,000,000 bytes exceeds the 100 MB limit" },
  { "header-not-json", "{\"t\": {\"dtype\": ", 0, NULL, SDCL_SAFETENSORS_ERROR_CORRUPT,
    "not valid JSON" },
  { "header-trailing-garbage", "{} x", 0, NULL, SDCL_SAFETENSORS_ERROR_CORRUPT,
    "not valid JSON" },
  { "header-two-objects", "{} {}", 0, NULL, SDCL_SAFETENSORS_ERROR_CORRUPT, "the header is not" },
  { "header-bad-utf8", NULL, 0, make_bad_utf8, SDCL_SAFETENSORS_ERROR_CORRUPT, "not valid JSON" },
  { "header-nul-bytes", NULL, 0, make_nul_in_header, SDCL_SAFETENSORS_ERROR_CORRUPT,
    "not valid JSON" },
  { "header-not-object", "[1, 2]", 0, NULL, SDCL_SAFETENSORS_ERROR_CORRUPT,
    "header is not a JSON object" },
  { "entry-not-object", "{\"t\": [1]}", 0, NULL, SDCL_SAFETENSORS_ERROR_CORRUPT,
    "entry of tensor 't' is not a JSON object" },
  { "entry-no-dtype", "{" T ("\"shape\":[2],\"data_offsets\":[0,8]") "}", 8, NULL,
    SDCL_SAFETENSORS_ERROR_CORRUPT, "tensor 't' has no \"dtype\"" },
  { "entry-no-shape", "{" T ("\"dtype\":\"F32\",\"data_offsets\":[0,8]") "}", 8, NULL,
    SDCL_SAFETENSORS_ERROR_CORRUPT, "tensor 't' has no \"shape\"" },
  { "entry-no-offsets", "{" T (F32x2) "}", 8, NULL,
    SDCL_SAFETENSORS_ERROR_CORRUPT, "tensor 't' has no \"data_offsets\"" },
  { "dtype-not-string", "{" T ("\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]") "}", 8, NULL,
    SDCL_SAFETENSORS_ERROR_CORRUPT, "\"dtype\" is not a string" },
  { "dtype-unknown", "{" T ("\"dtype\":\"F17\",\"shape\":[2],\"data_offsets\":[0,8]") "}", 8,
    NULL, SDCL_SAFETENSORS_ERROR_UNSUPPORTED, "tensor 't' has unknown dtype 'F17'" },
  { "dtype-f8-e4m3", "{" T ("\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]") "}", 2,
    NULL, SDCL_SAFETENSORS_ERROR_UNSUPPORTED, "F8_E4M3, which sdcl does not support" },
  { "dtype-f8-e5m2", "{" T ("\"dtype\":\"F8_E5M2\",\"shape\":[2],\"data_offsets\":[0,2]") "}", 2,
    NULL, SDCL_SAFETENSORS_ERROR_UNSUPPORTED, "F8_E5M2, which sdcl does not support" },
  { "shape-not-array", "{" T ("\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]") "}", 8,
    NULL, SDCL_SAFETENSORS_ERROR_CORRUPT, "\"shape\" is not an array" },
  { "shape-negative", "{" T ("\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]") "}", 8,
    NULL, SDCL_SAFETENSORS_ERROR_CORRUPT, "shape element 1 is not a non-negative integer" },
  { "shape-float", "{" T ("\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]") "}", 8,
    NULL, SDCL_SAFETENSORS_ERROR_CORRUPT, "shape element 0 is not a non-negative integer" },
  { "shape-string", "{" T ("\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]") "}", 8,
    NULL, SDCL_SAFETENSORS_ERROR_CORRUPT, "shape element 0 is not a non-negative integer" },
  { "shape-too-many-dims",
    "{" T ("\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]") "}", 8,
    NULL, SDCL_SAFETENSORS_ERROR_UNSUPPORTED, "has 9 dimensions; sdcl handles at most 8" },
  { "shape-overflow",
    "{" T ("\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]") "}", 8,
    NULL, SDCL_SAFETENSORS_ERROR_CORRUPT, "byte size overflows" },
  { "shape-bytes-overflow",
    "{" T ("\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,8]") "}", 8,
    NULL, SDCL_SAFETENSORS_ERROR_CORRUPT, "byte size overflows" },
  { "offsets-not-array", "{" T (F32x2 ",\"data_offsets\":8") "}", 8, NULL,
    SDCL_SAFETENSORS_ERROR_CORRUPT, "\"data_offsets\" is not two non-negative integers" },
  { "offsets-three", "{" T (F32x2 ",\"data_offsets\":[0,8,8]") "}", 8, NULL,
    SDCL_SAFETENSORS_ERROR_CORRUPT, "\"data_offsets\" is not two non-negative integers" },
  { "offsets-negative", "{" T (F32x2 ",\"data_offsets\":[-8,0]") "}", 8, NULL,
    SDCL_SAFETENSORS_ERROR_CORRUPT, "\"data_offsets\" is not two non-negative integers" },
  { "offsets-reversed", "{" T (F32x2 ",\"data_offsets\":[8,0]") "}", 8, NULL,
    SDCL_SAFETENSORS_ERROR_CORRUPT, "end at byte 0, before they begin" },
  { "offsets-size-mismatch", "{" T (F32x2 ",\"data_offsets\":[0,12]") "}", 12, NULL,
    SDCL_SAFETENSORS_ERROR_CORRUPT, "data_offsets span 12 bytes, but shape [2] of F32 needs 8" },
  { "offsets-past-data", "{" T (F32x2 ",\"data_offsets\":[4000,4008]") "}", 8, NULL,
    SDCL_SAFETENSORS_ERROR_CORRUPT, "tensor 't' ends at byte 4,008 of the data section, but "
    "the file has only 8 bytes" },
  { "offsets-huge", "{" T (F32x2 ",\"data_offsets\":[9223372036854775799,9223372036854775807]")
    "}", 8, NULL, SDCL_SAFETENSORS_ERROR_CORRUPT, "ends at byte 9,223,372,036,854,775,807" },
  { "truncated-data", NULL, 0, make_truncated, SDCL_SAFETENSORS_ERROR_CORRUPT,
    "(truncated file?)" },
  { "overlap", "{\"a\":{" F32x2 ",\"data_offsets\":[0,8]},"
               "\"b\":{" F32x2 ",\"data_offsets\":[4,12]}}", 12, NULL,
    SDCL_SAFETENSORS_ERROR_CORRUPT, "tensors 'a' (bytes 0 to 8) and 'b' (bytes 4 to 12) overlap" },
  { "duplicate-name", "{\"a\":{" F32x2 ",\"data_offsets\":[0,8]},"
                      "\"a\":{" F32x2 ",\"data_offsets\":[8,16]}}", 16, NULL,
    SDCL_SAFETENSORS_ERROR_CORRUPT, "duplicate tensor name 'a'" },
  { "duplicate-key-in-entry", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[2],"
                              "\"data_offsets\":[0,8]}}", 8, NULL,
    SDCL_SAFETENSORS_ERROR_CORRUPT, "duplicate key 'dtype' in the entry of tensor 'a'" },
  { "duplicate-metadata-key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, NULL,
    SDCL_SAFETENSORS_ERROR_CORRUPT, "duplicate key 'k' in __metadata__" },
  { "duplicate-metadata", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, NULL,
    SDCL_SAFETENSORS_ERROR_CORRUPT, "__metadata__ appears twice" },
  { "metadata-not-object", "{\"__metadata__\":[\"a\",\"b\"]}", 0, NULL,
    SDCL_SAFETENSORS_ERROR_CORRUPT, "__metadata__ is not a JSON object of strings" },
  { "metadata-not-string", "{\"__metadata__\":{\"epochs\":3}}", 0, NULL,
    SDCL_SAFETENSORS_ERROR_CORRUPT, "__metadata__ value of 'epochs' is not a string" },
  { "ckpt-zip", NULL, 0, make_zip, SDCL_SAFETENSORS_ERROR_UNSUPPORTED,
    "sdcl does not load pickle checkpoints" },
  { "ckpt-pickle", NULL, 0, make_pickle, SDCL_SAFETENSORS_ERROR_UNSUPPORTED,
    "this is a Python pickle" },
};

#undef T
#undef F32x2

static void
check_malformed_error (const MalformedCase *c, const GError *error, const gchar *name)
{
  g_test_message ("%s: %s", c->path, error ? error->message : "(no error)");
  g_assert_nonnull (error);
  g_assert_error ((GError *) error, SDCL_SAFETENSORS_ERROR, c->code);
  if (!strstr (error->message, c->phrase))
    g_error ("%s: expected the message to contain \"%s\", got \"%s\"", c->path, c->phrase,
             error->message);
  /* Messages start with the file's basename, never the full path. */
  g_autofree gchar *prefix = g_strdup_printf ("%s: ", name);
  g_assert_true (g_str_has_prefix (error->message, prefix));
}

static void
test_malformed (gconstpointer data)
{
  const MalformedCase *c = data;
  g_autoptr (GBytes) bytes = c->make ? c->make () : raw_file (c->header, c->data_len);
  g_autofree gchar *name = g_strdup_printf ("%s.safetensors", c->path);
  write_scratch (name, bytes);

  /* Through the map ... */
  g_autofree gchar *path = scratch_path (name);
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclSafetensors) st = sdcl_safetensors_open (path, &error);
  g_assert_null (st);
  check_malformed_error (c, error, name);

  /* ... and from memory, with the same verdict. */
  g_autoptr (GError) error_mem = NULL;
  g_autoptr (SdclSafetensors) st_mem = sdcl_safetensors_open_bytes (bytes, "mem", &error_mem);
  g_assert_null (st_mem);
  check_malformed_error (c, error_mem, "mem");
}

/* ---- fuzz-style mutations ------------------------------------------------- */

/* Seeded mutations of a valid file through the fuzz entry point, which
 * aborts on a crash-worthy outcome; under ASan/UBSan any read outside the
 * input fails the test too. Both outcomes must occur, or the mutations are
 * not reaching the checks. */
static void
test_fuzz_mutations (void)
{
  g_autoptr (GBytes) valid = sample_bytes ();
  gsize size = 0;
  const guint8 *orig = g_bytes_get_data (valid, &size);
  guint64 header_len;
  memcpy (&header_len, orig, 8);
  header_len = GUINT64_FROM_LE (header_len);
  static const gchar json_bytes[] = "{}[]\",:-0123456789e. \\u";

  g_autoptr (GRand) rand = g_rand_new_with_seed (20240611);
  guint opened = 0, refused = 0;
  for (guint round = 0; round < 600; round++)
    {
      g_autofree guint8 *buf = g_memdup2 (orig, size);
      gsize len = size;
      switch (round % 6)
        {
        case 0:   /* flip bits anywhere */
          for (gint k = g_rand_int_range (rand, 1, 4); k > 0; k--)
            buf[g_rand_int_range (rand, 0, (gint32) len)] ^= (guint8) (1u << g_rand_int_range (rand, 0, 8));
          break;
        case 1:   /* a JSON-significant byte into the header */
          for (gint k = g_rand_int_range (rand, 1, 3); k > 0; k--)
            buf[8 + g_rand_int_range (rand, 0, (gint32) header_len)] =
              (guint8) json_bytes[g_rand_int_range (rand, 0, sizeof json_bytes - 1)];
          break;
        case 2:   /* truncate */
          len = (gsize) g_rand_int_range (rand, 0, (gint32) len);
          break;
        case 3:   /* a different header length */
          {
            guint64 n = round % 12 == 3 ? (guint64) g_rand_int_range (rand, 0, (gint32) size + 16)
                                        : ((guint64) g_rand_int (rand) << 32) | g_rand_int (rand);
            n = GUINT64_TO_LE (n);
            memcpy (buf, &n, 8);
          }
          break;
        case 4:   /* a digit of an offset or shape changed */
          for (gsize k = 8; k < 8 + header_len; k++)
            if (g_ascii_isdigit (buf[k]) && g_rand_int_range (rand, 0, 8) == 0)
              buf[k] = (guint8) ('0' + g_rand_int_range (rand, 0, 10));
          break;
        case 5:   /* random bytes in the data section: must always open */
          buf[8 + header_len + g_rand_int_range (rand, 0, (gint32) (size - 8 - header_len))] ^= 0xff;
          break;
        }

      LLVMFuzzerTestOneInput (buf, len);

      g_autoptr (GBytes) b = g_bytes_new (buf, len);
      g_autoptr (GError) error = NULL;
      g_autoptr (SdclSafetensors) st = sdcl_safetensors_open_bytes (b, "fuzz", &error);
      g_assert_true ((st != NULL) != (error != NULL));
      if (st)
        opened++;
      else
        refused++;
      if (round % 6 == 5)
        g_assert_nonnull (st);
    }
  g_test_message ("600 mutations: %u opened, %u refused", opened, refused);
  g_assert_cmpuint (opened, >, 100);
  g_assert_cmpuint (refused, >, 100);
}

/* ---- main ----------------------------------------------------------------- */

static void
remove_scratch (void)
{
  g_autoptr (GDir) dir = g_dir_open (scratch, 0, NULL);
  const gchar *name;
  while (dir && (name = g_dir_read_name (dir)))
    {
      g_autofree gchar *path = scratch_path (name);
      g_unlink (path);
    }
  g_rmdir (scratch);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_autoptr (GError) error = NULL;
  scratch = g_dir_make_tmp ("sdcl-safetensors-XXXXXX", &error);
  g_assert_no_error (error);

  g_test_add_func ("/safetensors/roundtrip", test_roundtrip);
  g_test_add_func ("/safetensors/read-f32", test_read_f32);
  g_test_add_func ("/safetensors/read-f32/dtypes", test_read_f32_dtypes);
  g_test_add_func ("/safetensors/reference-file", test_reference_file);
  g_test_add_func ("/safetensors/pickle-lookalike-header", test_pickle_lookalike);
  g_test_add_func ("/safetensors/unusual-but-valid", test_unusual_but_valid);
  g_test_add_func ("/safetensors/writer-errors", test_writer_errors);
  g_test_add_func ("/safetensors/io-errors", test_io_errors);
  for (guint i = 0; i < G_N_ELEMENTS (malformed); i++)
    {
      g_autofree gchar *path = g_strdup_printf ("/safetensors/malformed/%s", malformed[i].path);
      g_test_add_data_func (path, &malformed[i], test_malformed);
    }
  g_test_add_func ("/safetensors/fuzz-mutations", test_fuzz_mutations);

  int status = g_test_run ();
  remove_scratch ();
  g_free (scratch);
  return status;
}
