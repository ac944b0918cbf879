/* test-rng.c — the engine's generator against PyTorch's CPU generator, bit
 * for bit: torch.randn cases and raw mt19937 outputs from
 * tests/fixtures/rng.safetensors (made by tests/reference/make_rng_fixtures.py),
 * the C++ standard's mt19937 check value, and how many raw outputs each
 * call consumes (worked out from ATen's normal_fill and normal_distribution).
 */
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "rng.h"
#include "safetensors.h"
#include "testutil.h"

static SdclSafetensors *fixtures;
static JsonArray *cases;        /* the fixture's "sdcl.rng_cases" */

static guint64
case_seed (JsonObject *c)
{
  guint64 seed = 0;
  g_autoptr (GError) error = NULL;
  g_ascii_string_to_unsigned (json_object_get_string_member (c, "seed"), 10, 0, G_MAXUINT64,
                              &seed, &error);
  g_assert_no_error (error);
  return seed;
}

/* Index of the first value whose bits differ, or -1; counts them all. */
static gssize
first_difference (const gfloat *got, const gfloat *want, gsize n, gsize *n_diff)
{
  gssize first = -1;
  *n_diff = 0;
  for (gsize i = 0; i < n; i++)
    if (memcmp (got + i, want + i, sizeof (gfloat)) != 0)
      {
        if (first < 0)
          first = (gssize) i;
        (*n_diff)++;
      }
  return first;
}

/* ---- mt19937 ----------------------------------------------------------------------- */

/* C++ [rand.predef]: the 10000th output of a default-constructed
 * std::mt19937 (seed 5489) is 4123659995. */
static void
test_mt19937_standard (void)
{
  g_autoptr (SdclRng) rng = sdcl_rng_new (5489);
  guint32 x = 0;
  for (guint i = 0; i < 10000; i++)
    x = sdcl_rng_random (rng);
  g_assert_cmpuint (x, ==, 4123659995u);
}

static void
test_mt19937_torch (void)
{
  guint n_cases = 0;
  for (guint i = 0; i < json_array_get_length (cases); i++)
    {
      JsonObject *c = json_array_get_object_element (cases, i);
      const gchar *name = json_object_get_string_member (c, "name");
      if (!g_str_has_prefix (name, "raw."))
        continue;
      const SdclSafetensorsEntry *e = sdcl_safetensors_get (fixtures, name);
      g_assert_nonnull (e);
      g_assert_cmpint (e->dtype, ==, SDCL_ST_U32);
      g_autoptr (SdclRng) rng = sdcl_rng_new (case_seed (c));
      for (gint64 k = 0; k < e->numel; k++)
        {
          guint32 want;
          memcpy (&want, (const guint8 *) e->data + 4 * k, 4);
          want = GUINT32_FROM_LE (want);
          const guint32 got = sdcl_rng_random (rng);
          if (got != want)
            sdcl_test_fail ("%s (seed %s): output %" G_GINT64_FORMAT " is %u, torch gives %u", name,
                            json_object_get_string_member (c, "seed"), k, got, want);
        }
      n_cases++;
    }
  g_test_message ("%u raw mt19937 sequences from torch", n_cases);
  g_assert_cmpuint (n_cases, >=, 3);
}

/* ---- torch.randn ------------------------------------------------------------------- */

/* Runs one fixture case: a fresh generator, then randn for each shape in
 * "calls"; returns whether every value has torch's bits. */
static gboolean
run_case (JsonObject *c, SdclRngFlavor flavor)
{
  const gchar *name = json_object_get_string_member (c, "name");
  g_autoptr (GError) error = NULL;
  gint64 total = 0;
  g_autofree gfloat *want = sdcl_safetensors_read_f32 (fixtures, name, &total, &error);
  g_assert_no_error (error);
  g_autofree gfloat *got = g_new0 (gfloat, MAX (total, 1));
  g_autoptr (SdclRng) rng = sdcl_rng_new_full (case_seed (c), flavor);

  JsonArray *calls = json_object_get_array_member (c, "calls");
  g_autoptr (GString) shapes = g_string_new (NULL);
  gsize offset = 0;
  gboolean same = TRUE;
  for (guint k = 0; k < json_array_get_length (calls); k++)
    {
      JsonArray *shape = json_array_get_array_element (calls, k);
      gsize n = 1;
      g_string_append (shapes, k ? ", (" : "(");
      for (guint d = 0; d < json_array_get_length (shape); d++)
        {
          const gint64 dim = json_array_get_int_element (shape, d);
          n *= (gsize) dim;
          g_string_append_printf (shapes, d ? ",%" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, dim);
        }
      g_string_append (shapes, ")");
      g_assert_cmpuint (offset + n, <=, (gsize) total);
      sdcl_rng_randn (rng, got + offset, n);

      gsize n_diff;
      const gssize i = first_difference (got + offset, want + offset, n, &n_diff);
      if (i >= 0)
        {
          g_test_message ("%s: seed %s, call %u of [%s...]: %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT
                          " values differ; first at %" G_GSSIZE_FORMAT ": expected %a (%.9g), got %a (%.9g)",
                          name, json_object_get_string_member (c, "seed"), k + 1, shapes->str,
                          n_diff, n, i, want[offset + i], want[offset + i], got[offset + i], got[offset + i]);
          same = FALSE;
        }
      offset += n;
    }
  g_assert_cmpuint (offset, ==, (gsize) total);
  return same;
}

static void
run_flavor (const gchar *flavor_name, SdclRngFlavor flavor, guint min_cases)
{
  guint n_cases = 0, n_failed = 0;
  gsize n_values = 0;
  for (guint i = 0; i < json_array_get_length (cases); i++)
    {
      JsonObject *c = json_array_get_object_element (cases, i);
      if (g_strcmp0 (json_object_get_string_member_with_default (c, "flavour", ""), flavor_name) != 0)
        continue;
      n_cases++;
      n_failed += !run_case (c, flavor);
      n_values += sdcl_safetensors_get (fixtures, json_object_get_string_member (c, "name"))->numel;
    }
  g_test_message ("%s: %u of %u torch.randn cases bit-exact (%" G_GSIZE_FORMAT " values; torch %s, %s)",
                  flavor_name, n_cases - n_failed, n_cases, n_values,
                  sdcl_safetensors_metadata (fixtures, "sdcl.torch_version"),
                  flavor == SDCL_RNG_TORCH_AVX2
                  ? sdcl_safetensors_metadata (fixtures, "sdcl.cpu_capability.avx2")
                  : sdcl_safetensors_metadata (fixtures, "sdcl.cpu_capability.scalar"));
  g_assert_cmpuint (n_cases, >=, min_cases);
  g_assert_cmpuint (n_failed, ==, 0);
}

static void
test_randn_avx2 (void)
{
  run_flavor ("avx2", SDCL_RNG_TORCH_AVX2, 60);
}

/* libm's logf/sinf/cosf: glibc's (the Debian root's and PyTorch's on the
 * host) agree; another libm may not. */
static void
test_randn_scalar (void)
{
  run_flavor ("scalar", SDCL_RNG_TORCH_SCALAR, 10);
}

/* ---- consumption ------------------------------------------------------------------- */

/* Raw outputs torch.randn(n) takes from a fresh generator, or from one
 * whose cached normal is `cached`: n >= 16 one per value plus 16 for a
 * partial last block; below 16 two doubles (four words) per new pair. */
static guint
expected_draws (gsize n, gboolean *cached)
{
  if (n >= 16)
    return (guint) (n + (n % 16 ? 16 : 0));
  guint draws = 0;
  for (gsize i = 0; i < n; i++)
    {
      if (!*cached)
        draws += 4;
      *cached = !*cached;
    }
  return draws;
}

static void
test_consumption (void)
{
  static const gsize sizes[] = { 0, 1, 1, 2, 5, 15, 16, 17, 31, 32, 33, 384, 3, 1, 4097, 1, 7 };
  g_autoptr (SdclRng) rng = sdcl_rng_new (20240101);
  g_autoptr (SdclRng) twin = sdcl_rng_new (20240101);
  g_autofree gfloat *buf = g_new (gfloat, 4097);
  gboolean cached = FALSE;
  for (guint k = 0; k < G_N_ELEMENTS (sizes); k++)
    {
      sdcl_rng_randn (rng, buf, sizes[k]);
      const guint draws = expected_draws (sizes[k], &cached);
      for (guint d = 0; d < draws; d++)
        sdcl_rng_random (twin);
      /* a raw draw in between (torch.randint on the same generator) */
      const guint32 a = sdcl_rng_random (rng), b = sdcl_rng_random (twin);
      if (a != b)
        sdcl_test_fail ("randn(%" G_GSIZE_FORMAT ") (call %u) should take %u raw outputs", sizes[k], k + 1, draws);
    }
}

/* The second value of a small call's pair waits in the generator through
 * large calls (normal_fill never looks at it) until the next small one. */
static void
test_cached_normal (void)
{
  gfloat pair[2], one, big[384];
  g_autoptr (SdclRng) fresh = sdcl_rng_new (77);
  sdcl_rng_randn (fresh, pair, 2);

  g_autoptr (SdclRng) rng = sdcl_rng_new (77);
  sdcl_rng_randn (rng, &one, 1);
  g_assert_cmpmem (&one, 4, &pair[0], 4);
  sdcl_rng_randn (rng, big, 384);
  sdcl_rng_randn (rng, &one, 1);
  g_assert_cmpmem (&one, 4, &pair[1], 4);

  /* a new generator (manual_seed) starts without one */
  g_autoptr (SdclRng) again = sdcl_rng_new (77);
  sdcl_rng_randn (again, &one, 1);
  g_assert_cmpmem (&one, 4, &pair[0], 4);
}

/* Only the low 32 bits of the seed reach the state, as in torch. */
static void
test_seed_bits (void)
{
  gfloat a[40], b[40];
  g_autoptr (SdclRng) low = sdcl_rng_new (7);
  g_autoptr (SdclRng) high = sdcl_rng_new (G_GUINT64_CONSTANT (0x100000007));
  sdcl_rng_randn (low, a, 40);
  sdcl_rng_randn (high, b, 40);
  g_assert_cmpmem (a, sizeof a, b, sizeof b);
  sdcl_rng_free (NULL);
}

/* An SD 1.x 1024x1024 or SDXL latent: 4x128x128 values. Reports the time;
 * fails only far above the 10 ms budget (shared machines, sanitizers). */
static void
test_speed (void)
{
  const gsize n = 4 * 128 * 128;
  g_autofree gfloat *v = g_new (gfloat, n);
  gdouble best = G_MAXDOUBLE;
  for (guint k = 0; k < 5; k++)
    {
      g_autoptr (SdclRng) rng = sdcl_rng_new (k);
      const gint64 t0 = g_get_monotonic_time ();
      sdcl_rng_randn (rng, v, n);
      best = MIN (best, (g_get_monotonic_time () - t0) / 1000.0);
    }
  gdouble sum = 0, sum2 = 0;
  for (gsize i = 0; i < n; i++)
    {
      sum += v[i];
      sum2 += (gdouble) v[i] * v[i];
    }
  const gdouble mean = sum / n, sd = sqrt (sum2 / n - mean * mean);
  g_test_message ("randn(4x128x128): %.2f ms (best of 5); mean %.4f, sd %.4f", best, mean, sd);
  g_assert_cmpfloat (fabs (mean), <, 0.02);
  g_assert_cmpfloat (fabs (sd - 1), <, 0.02);
  g_assert_cmpfloat (best, <, 100);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_autofree gchar *path = sdcl_test_fixture ("rng.safetensors");
  g_autoptr (GError) error = NULL;
  fixtures = sdcl_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_autoptr (JsonParser) parser = json_parser_new ();
  const gchar *listing = sdcl_safetensors_metadata (fixtures, "sdcl.rng_cases");
  g_assert_nonnull (listing);
  json_parser_load_from_data (parser, listing, -1, &error);
  g_assert_no_error (error);
  cases = json_node_get_array (json_parser_get_root (parser));

  g_test_add_func ("/rng/mt19937/standard", test_mt19937_standard);
  g_test_add_func ("/rng/mt19937/torch", test_mt19937_torch);
  g_test_add_func ("/rng/randn/avx2", test_randn_avx2);
  g_test_add_func ("/rng/randn/scalar", test_randn_scalar);
  g_test_add_func ("/rng/consumption", test_consumption);
  g_test_add_func ("/rng/cached-normal", test_cached_normal);
  g_test_add_func ("/rng/seed-bits", test_seed_bits);
  g_test_add_func ("/rng/speed", test_speed);
  const int status = g_test_run ();
  sdcl_safetensors_free (fixtures);
  return status;
}
