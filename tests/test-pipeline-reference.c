/* test-pipeline-reference.c — the engine's samplers and pipelines against
 * diffusers (tests/fixtures/pipeline, made by
 * tests/reference/make_pipeline_fixtures.py):
 *
 *  - samplers alone: the same schedule (timesteps, sigmas, input scale,
 *    initial sigma) and, fed the same "model outputs", the same samples
 *    after every step, noise drawn from the same seeded generator;
 *  - whole pipelines on the tiny models: the same initial noise (bit for
 *    bit), latents after every step, final latent and
 *    image, for every sampler, txt2img, img2img and inpainting with 4- and
 *    9-channel models.
 *
 * --fixtures DIR reads another folder of the same script's output (its
 * --model runs: pipeline.safetensors alone, tests/fixtures/default-model
 * for the shipped model) and --model FILE runs every case on that file
 * rather than the one its JSON names (relative to the source tree); where
 * the JSON records the model's SHA-256, the file must have it. Only the
 * tests the folder has data for are registered: the samplers where it has
 * schedulers.safetensors, and each mode its cases use.
 *
 * Tolerances: sampler arithmetic is float32 on both sides and differs only
 * by operation order (2e-5 of the largest value). Pipelines add the
 * engine's UNet, text encoder and VAE against PyTorch's float32, whose own
 * error the fixture records against float64 ("f32_vs_f64", up to 2e-5);
 * the engine stays within 2.5e-5 of the largest latent or pixel value over
 * 8 steps (nmse below 2e-10), and is held to 1e-4 (nmse 1e-9).
 */
#include <math.h>
#include <string.h>
#include <json-glib/json-glib.h>

#include "model.h"
#include "pipeline.h"
#include "rng.h"
#include "safetensors.h"
#include "sampler.h"
#include "sdcl.h"
#include "testutil.h"

static SdclEngine *engine;
static gchar *fixture_dir;      /* --fixtures, default tests/fixtures/pipeline */
static gchar *model_override;   /* --model, or NULL: each case's own */

static gchar *
fixture_file (const gchar *name)
{
  return g_build_filename (fixture_dir, name, NULL);
}

static JsonObject *
meta_object (const SdclSafetensors *st, const gchar *key)
{
  const gchar *text = sdcl_safetensors_metadata (st, key);
  g_assert_nonnull (text);
  JsonNode *node = json_from_string (text, NULL);
  g_assert_nonnull (node);
  JsonObject *o = json_object_ref (json_node_get_object (node));
  json_node_unref (node);
  return o;
}

static gfloat *
tensor (const SdclSafetensors *st, const gchar *prefix, const gchar *name, gint64 *numel)
{
  g_autofree gchar *key = g_strconcat (prefix, ".", name, NULL);
  g_autoptr (GError) error = NULL;
  gfloat *v = sdcl_safetensors_read_f32 (st, key, numel, &error);
  g_assert_no_error (error);
  return v;
}

static gboolean
has_tensor (const SdclSafetensors *st, const gchar *prefix, const gchar *name)
{
  g_autofree gchar *key = g_strconcat (prefix, ".", name, NULL);
  return sdcl_safetensors_get (st, key) != NULL;
}

/* the sampler a diffusers scheduler class and config stand for */
static void
sampler_of (JsonObject *scheduler, SdclSampler *sampler, SdclSchedule *schedule)
{
  const gchar *cls = json_object_get_string_member (scheduler, "class");
  JsonObject *config = json_object_get_object_member (scheduler, "config");
  *schedule = json_object_get_boolean_member_with_default (config, "use_karras_sigmas", FALSE)
                ? SDCL_SCHEDULE_KARRAS : SDCL_SCHEDULE_DEFAULT;
  if (g_str_equal (cls, "EulerDiscreteScheduler"))
    *sampler = SDCL_SAMPLER_EULER;
  else if (g_str_equal (cls, "EulerAncestralDiscreteScheduler"))
    *sampler = SDCL_SAMPLER_EULER_A;
  else if (g_str_equal (cls, "DDIMScheduler"))
    *sampler = SDCL_SAMPLER_DDIM;
  else if (g_str_equal (cls, "DPMSolverMultistepScheduler"))
    *sampler = SDCL_SAMPLER_DPMPP_2M;
  else if (g_str_equal (cls, "LCMScheduler"))
    *sampler = SDCL_SAMPLER_LCM;
  else
    sdcl_test_fail ("unknown scheduler class %s", cls);
}

static gchar *
config_json (JsonObject *scheduler)
{
  JsonNode *node = json_object_get_member (scheduler, "config");
  return json_to_string (node, FALSE);
}

static gdouble
member_double (JsonObject *o, const gchar *key, gdouble fallback)
{
  JsonNode *n = json_object_get_member (o, key);
  return n && !JSON_NODE_HOLDS_NULL (n) ? json_node_get_double (n) : fallback;
}

static void
assert_close_scalar (const gchar *what, gdouble got, gdouble want, gdouble rel)
{
  if (fabs (got - want) > rel * MAX (fabs (want), 1e-3))
    sdcl_test_fail ("%s: got %.9g, want %.9g", what, got, want);
}

/* ---- samplers alone ------------------------------------------------------------------- */

static void
check_scheduler (const SdclSafetensors *st, const gchar *name)
{
  g_autofree gchar *key = g_strconcat ("sched.", name, NULL);
  g_autoptr (JsonObject) meta = meta_object (st, key);
  g_autoptr (JsonObject) sched = json_object_ref (json_object_get_object_member (meta, "scheduler"));
  SdclSampler sampler;
  SdclSchedule schedule;
  sampler_of (sched, &sampler, &schedule);
  g_autofree gchar *cfg_text = config_json (sched);
  SdclScheduleConfig cfg;
  g_autoptr (GError) error = NULL;
  g_assert_true (sdcl_schedule_config_parse (&cfg, cfg_text, &error));
  const guint n = json_object_get_int_member (meta, "steps");
  const gdouble eta = member_double (meta, "eta", 0.0);
  g_autoptr (SdclScheduler) s = sdcl_scheduler_new (&cfg, sampler, schedule, n, eta, &error);
  g_assert_no_error (error);

  /* the schedule */
  gint64 nt = 0, ns = 0;
  g_autofree gfloat *ts = tensor (st, key, "timesteps", &nt);
  g_assert_cmpint (nt, ==, n);
  for (guint i = 0; i < n; i++)
    {
      g_autofree gchar *what = g_strdup_printf ("%s timestep %u", name, i);
      assert_close_scalar (what, sdcl_scheduler_timestep (s, i), ts[i], 1e-5);
    }
  if (has_tensor (st, key, "sigmas"))
    {
      g_autofree gfloat *sg = tensor (st, key, "sigmas", &ns);
      for (guint i = 0; i < ns; i++)
        {
          g_autofree gchar *what = g_strdup_printf ("%s sigma %u", name, i);
          assert_close_scalar (what, sdcl_scheduler_sigma (s, i), sg[i], 1e-5);
        }
    }
  g_autofree gchar *what_ins = g_strdup_printf ("%s init_noise_sigma", name);
  assert_close_scalar (what_ins, sdcl_scheduler_init_noise_sigma (s),
                       member_double (meta, "init_noise_sigma", 1), 1e-5);

  /* img2img: the start and the noised x0 */
  guint first = 0;
  if (!JSON_NODE_HOLDS_NULL (json_object_get_member (meta, "strength")))
    {
      const guint left = sdcl_scheduler_set_strength (s, member_double (meta, "strength", 1));
      first = sdcl_scheduler_first (s);
      g_assert_cmpuint (first, ==, json_object_get_int_member (meta, "t_start"));
      g_assert_cmpuint (left, ==, json_object_get_int_member (meta, "steps_run"));
    }
  gint64 n_lat = 0;
  g_autofree gfloat *init = tensor (st, key, "init", &n_lat);
  if (first > 0)
    {
      g_autofree gfloat *x0 = tensor (st, key, "x0", NULL);
      g_autofree gfloat *noise = tensor (st, key, "noise", NULL);
      g_autofree gfloat *noised = g_new (gfloat, n_lat);
      sdcl_scheduler_add_noise (s, first, x0, noise, noised, n_lat);
      g_autofree gchar *what = g_strdup_printf ("%s add_noise", name);
      sdcl_test_assert_close (what, noised, init, n_lat, 1e-6, 1e-12);
    }

  /* the steps, on the recorded model outputs */
  g_autofree gfloat *outputs = tensor (st, key, "model_outputs", NULL);
  g_autofree gfloat *samples = tensor (st, key, "samples", NULL);
  g_autofree gfloat *scale = tensor (st, key, "scale", NULL);
  g_autoptr (SdclRng) rng = sdcl_rng_new (json_object_get_int_member (meta, "step_generator_seed"));
  g_autofree gfloat *x = g_memdup2 (init, n_lat * sizeof (gfloat));
  for (guint i = first, k = 0; i < n; i++, k++)
    {
      g_autofree gchar *what = g_strdup_printf ("%s step %u", name, k);
      assert_close_scalar (what, sdcl_scheduler_input_scale (s, i), scale[k], 1e-6);
      sdcl_scheduler_step (s, i, outputs + k * n_lat, x, rng, NULL, n_lat);
      sdcl_test_assert_close (what, x, samples + k * n_lat, n_lat, 2e-5, 1e-9);
    }
}

static void
test_schedulers (void)
{
  g_autofree gchar *path = fixture_file ("schedulers.safetensors");
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclSafetensors) st = sdcl_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_autoptr (JsonNode) names = json_from_string (sdcl_safetensors_metadata (st, "sdcl.schedulers"),
                                                 NULL);
  JsonArray *a = json_node_get_array (names);
  g_assert_cmpuint (json_array_get_length (a), >=, 20);
  for (guint i = 0; i < json_array_get_length (a); i++)
    {
      const gchar *name = json_array_get_string_element (a, i);
      if (g_test_verbose ())
        g_printerr ("  sched.%s\n", name);
      check_scheduler (st, name);
    }
}

/* ---- whole pipelines -------------------------------------------------------------------- */

typedef struct
{
  gchar     *model_path;
  gchar     *sha256;
  SdclModel *model;
} Loaded;

static GPtrArray *loaded;

static gchar *
file_sha256 (const gchar *path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GMappedFile) map = g_mapped_file_new (path, FALSE, &error);
  g_assert_no_error (error);
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) g_mapped_file_get_contents (map),
                                      g_mapped_file_get_length (map));
}

/* The case's model: --model, else the file its JSON names. Where the JSON
 * records the file's SHA-256, other weights fail as that, not as a
 * numerical mismatch. */
static SdclModel *
model_for (JsonObject *meta)
{
  const gchar *named = json_object_get_string_member (meta, "model");
  g_autofree gchar *path = model_override ? g_strdup (model_override)
                           : g_path_is_absolute (named) ? g_strdup (named)
                           : g_build_filename (SDCL_SOURCE_DIR, named, NULL);
  Loaded *l = NULL;
  for (guint i = 0; i < loaded->len && !l; i++)
    if (g_str_equal (((Loaded *) loaded->pdata[i])->model_path, path))
      l = loaded->pdata[i];
  if (!l)
    {
      l = g_new0 (Loaded, 1);
      l->model_path = g_strdup (path);
      g_ptr_array_add (loaded, l);
    }
  const gchar *want = json_object_get_string_member_with_default (meta, "model_sha256", NULL);
  if (want && !l->sha256)
    l->sha256 = file_sha256 (path);
  if (want && !g_str_equal (l->sha256, want))
    sdcl_test_fail ("%s has SHA-256 %s, but the fixture in %s was made from %s with SHA-256 %s: "
                    "regenerate it (tests/reference/make_pipeline_fixtures.py --model)",
                    path, l->sha256, fixture_dir, named, want);
  if (!l->model)
    {
      g_autoptr (GError) error = NULL;
      l->model = sdcl_model_load (engine, path, NULL, &error);
      g_assert_no_error (error);
    }
  return l->model;
}

static void
loaded_free (gpointer p)
{
  Loaded *l = p;
  sdcl_model_free (l->model);
  g_free (l->model_path);
  g_free (l->sha256);
  g_free (l);
}

static void
check_case (const SdclSafetensors *st, const gchar *name)
{
  g_autofree gchar *key = g_strconcat ("case.", name, NULL);
  g_autoptr (JsonObject) meta = meta_object (st, key);
  SdclModel *model = model_for (meta);
  JsonObject *sched = json_object_get_object_member (meta, "scheduler");
  g_autofree gchar *sched_json = config_json (sched);
  sdcl_model_set_scheduler_json (model, sched_json);

  SdclRequest r;
  sdcl_request_init (&r);
  const gchar *mode = json_object_get_string_member (meta, "mode");
  r.mode = g_str_equal (mode, "txt2img") ? SDCL_MODE_TXT2IMG
           : g_str_equal (mode, "img2img") ? SDCL_MODE_IMG2IMG : SDCL_MODE_INPAINT;
  sampler_of (sched, &r.sampler, &r.schedule);
  r.prompt = json_object_get_string_member (meta, "prompt");
  JsonNode *neg = json_object_get_member (meta, "negative_prompt");
  r.negative_prompt = neg && !JSON_NODE_HOLDS_NULL (neg) ? json_node_get_string (neg) : NULL;
  r.width = json_object_get_int_member (meta, "width");
  r.height = json_object_get_int_member (meta, "height");
  r.steps = json_object_get_int_member (meta, "steps");
  r.cfg_scale = member_double (meta, "cfg", 7.5);
  r.eta = member_double (meta, "eta", 0.0);
  r.strength = member_double (meta, "strength", 1.0);
  JsonArray *seeds = json_object_get_array_member (meta, "seeds");
  r.seed = json_array_get_int_element (seeds, 0);
  r.batch_count = json_array_get_length (seeds);

  g_autofree guint8 *init = NULL;
  g_autofree guint8 *mask = NULL;
  guint iw = 0, ih = 0;
  JsonObject *png = json_object_get_object_member (meta, "png");
  g_autoptr (GError) error = NULL;
  if (r.mode != SDCL_MODE_TXT2IMG)
    {
      g_autofree gchar *p = fixture_file ("init.png");
      init = sdcl_png_read_rgb (p, &iw, &ih, &error);
      g_assert_no_error (error);
      r.init_image = init;
      r.init_width = iw;
      r.init_height = ih;
    }
  if (r.mode == SDCL_MODE_INPAINT)
    {
      const gchar *m = json_object_get_string_member (png, "mask");
      if (g_str_equal (m, "mask.png"))
        {
          g_autofree gchar *p = fixture_file ("mask.png");
          guint mw, mh;
          mask = sdcl_png_read_gray (p, &mw, &mh, &error);
          g_assert_no_error (error);
          g_assert_cmpuint (mw, ==, iw);
        }
      else
        {
          mask = g_malloc ((gsize) iw * ih);
          memset (mask, 255, (gsize) iw * ih);
        }
      r.mask = mask;
    }

  SdclTrace trace = { 0 };
  g_autoptr (GPtrArray) images = sdcl_generate_traced (model, &r, NULL, NULL, &trace, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (images->len, ==, r.batch_count);

  const gsize n = (gsize) trace.latent_width * trace.latent_height * trace.latent_channels;
  const guint batch = r.batch_count;   /* the trace follows the first image */
  gint64 numel = 0;

  /* the initial noise: the generator reproduces torch's bit for bit */
  g_autofree gfloat *noise = tensor (st, name, "noise", &numel);
  g_assert_cmpint (numel, ==, n * batch);
  for (gsize i = 0; i < n; i++)
    if (memcmp (&noise[i], &trace.noise[i], sizeof (gfloat)) != 0)
      sdcl_test_fail ("%s: noise[%" G_GSIZE_FORMAT "] is %a, torch drew %a", name, i, trace.noise[i],
                      noise[i]);

  /* the latents after every step, the final latent, the image */
  g_autofree gfloat *steps = tensor (st, name, "latents", &numel);
  const guint run = json_object_get_int_member (meta, "steps_run");
  g_assert_cmpuint (trace.step_latents->len, ==, run * n);
  for (guint k = 0; k < run; k++)
    {
      g_autofree gchar *what = g_strdup_printf ("%s latent after step %u", name, k + 1);
      sdcl_test_assert_close (what, (gfloat *) trace.step_latents->data + k * n,
                              steps + k * n * batch, n, 1e-4, 1e-9);
    }
  g_autofree gfloat *final = tensor (st, name, "final_latent", NULL);
  g_autofree gchar *what_final = g_strdup_printf ("%s final latent", name);
  sdcl_test_assert_close (what_final, trace.final_latent, final, n, 1e-4, 1e-9);

  /* image: [H][W][3] there, [3][H][W] here */
  const gsize plane = (gsize) r.width * r.height;
  g_autofree gfloat *want = tensor (st, name, "image", NULL);
  g_autofree gfloat *got = g_new (gfloat, 3 * plane);
  for (gsize i = 0; i < plane; i++)
    for (gint c = 0; c < 3; c++)
      got[3 * i + c] = trace.image[c * plane + i];
  g_autofree gchar *what_image = g_strdup_printf ("%s image", name);
  sdcl_test_assert_close (what_image, got, want, 3 * plane, 1e-4, 1e-9);

  /* every image's pixels, where nothing is pasted back: within one level */
  for (guint b = 0; b < batch && r.mode != SDCL_MODE_INPAINT; b++)
    {
      const SdclImage *img = images->pdata[b];
      g_assert_cmpuint (img->seed, ==, r.seed + b);
      for (gsize i = 0; i < 3 * plane; i++)
        {
          const gint ref = (gint) nearbyintf (want[b * 3 * plane + i] * 255.0f);
          if (ABS (ref - (gint) img->pixels[i]) > 1)
            sdcl_test_fail ("%s image %u: byte %" G_GSIZE_FORMAT " is %u, diffusers gives %d", name, b, i,
                            img->pixels[i], ref);
        }
    }
  sdcl_trace_clear (&trace);
}

typedef void (*CaseFunc) (const SdclSafetensors *st, const gchar *name, JsonObject *meta, gpointer data);

/* Calls fn on every case of the fixture's pipeline.safetensors whose mode
 * is `only` (NULL: every case); returns how many. */
static guint
for_each_case (const gchar *only, CaseFunc fn, gpointer data)
{
  g_autofree gchar *path = fixture_file ("pipeline.safetensors");
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclSafetensors) st = sdcl_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_autoptr (JsonNode) names = json_from_string (sdcl_safetensors_metadata (st, "sdcl.cases"), NULL);
  JsonArray *a = json_node_get_array (names);
  guint n = 0;
  for (guint i = 0; i < json_array_get_length (a); i++)
    {
      const gchar *name = json_array_get_string_element (a, i);
      g_autofree gchar *key = g_strconcat ("case.", name, NULL);
      g_autoptr (JsonObject) meta = meta_object (st, key);
      if (only && !g_str_equal (json_object_get_string_member (meta, "mode"), only))
        continue;
      fn (st, name, meta, data);
      n++;
    }
  return n;
}

static void
run_case (const SdclSafetensors *st, const gchar *name, JsonObject *meta, gpointer data)
{
  if (g_test_verbose ())
    g_printerr ("  %s\n", name);
  check_case (st, name);
}

static void
test_pipelines (gconstpointer data)
{
  g_assert_cmpuint (for_each_case (data, run_case, NULL), >, 0);
}

/* ---- which tests the fixture folder has data for ---------------------------------------- */

static void
note_mode (const SdclSafetensors *st, const gchar *name, JsonObject *meta, gpointer modes)
{
  g_hash_table_add (modes, g_strdup (json_object_get_string_member (meta, "mode")));
}

static void
add_tests (void)
{
  g_autofree gchar *schedulers = fixture_file ("schedulers.safetensors");
  if (g_file_test (schedulers, G_FILE_TEST_EXISTS))
    g_test_add_func ("/pipeline-reference/samplers", test_schedulers);
  g_autoptr (GHashTable) present = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for_each_case (NULL, note_mode, present);
  static const gchar *const modes[] = { "txt2img", "img2img", "inpaint" };
  for (guint i = 0; i < G_N_ELEMENTS (modes); i++)
    if (g_hash_table_contains (present, modes[i]))
      {
        g_autofree gchar *test = g_strconcat ("/pipeline-reference/", modes[i], NULL);
        g_test_add_data_func (test, modes[i], test_pipelines);
      }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  const GOptionEntry entries[] = {
    { "fixtures", 0, 0, G_OPTION_ARG_FILENAME, &fixture_dir,
      "Folder of make_pipeline_fixtures.py's output (default tests/fixtures/pipeline)", "DIR" },
    { "model", 0, 0, G_OPTION_ARG_FILENAME, &model_override,
      "Model file for every case instead of the one its JSON names", "FILE" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new (NULL);
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("test-pipeline-reference: %s\n", error->message);
      return 2;
    }
  if (!fixture_dir)
    fixture_dir = sdcl_test_fixture ("pipeline");
  engine = sdcl_engine_new (NULL, &error);
  g_assert_no_error (error);
  loaded = g_ptr_array_new_with_free_func (loaded_free);
  add_tests ();
  const int status = g_test_run ();
  g_ptr_array_unref (loaded);
  sdcl_engine_free (engine);
  g_free (fixture_dir);
  g_free (model_override);
  return status;
}
