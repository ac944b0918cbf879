/* test-pipeline.c — sdcl_generate(): what a caller relies on, on the tiny
 * models (tests/fixtures/models): seeds, batches, cancel, previews, bad
 * requests, img2img at strength 0, inpainting's untouched pixels, sizes
 * the UNet must round, txt2img far above the native size (drawn at it,
 * then enlarged). The comparison with diffusers' own pipelines is in
 * test-pipeline-reference.c.
 */
#include <string.h>
#include <gio/gio.h>
#include <glib/gstdio.h>

#include "model.h"
#include "pipeline.h"
#include "sampler.h"
#include "sdcl.h"
#include "testutil.h"

static SdclEngine *engine;
static SdclModel *tiny;          /* 4-channel */
static SdclModel *tiny_inpaint;  /* 9-channel */

#define W 64
#define H 96

static void
base_request (SdclRequest *r)
{
  sdcl_request_init (r);
  r->prompt = "a red square on a blue field";
  r->negative_prompt = "blurry";
  r->width = W;
  r->height = H;
  r->steps = 4;
  r->seed = 1234;
  r->sampler = SDCL_SAMPLER_EULER;
}

/* a picture with structure: gradients and a disc */
static guint8 *
test_picture (void)
{
  guint8 *p = g_new (guint8, W * H * 3);
  for (guint y = 0; y < H; y++)
    for (guint x = 0; x < W; x++)
      {
        const gboolean disc = (x - 30) * (x - 30) + (y - 50) * (y - 50) < 300;
        p[3 * (y * W + x) + 0] = disc ? 230 : (guint8) (x * 4);
        p[3 * (y * W + x) + 1] = disc ? 40 : (guint8) (y * 2);
        p[3 * (y * W + x) + 2] = (guint8) ((x + y) & 0xff);
      }
  return p;
}

/* a soft-edged box: 255 inside, a ramp of 6 pixels, 0 outside */
static guint8 *
test_mask (gboolean empty)
{
  guint8 *m = g_new0 (guint8, W * H);
  for (guint y = 0; y < H && !empty; y++)
    for (guint x = 0; x < W; x++)
      {
        const gint dx = MAX (MAX (13 - (gint) x, (gint) x - 45), 0);
        const gint dy = MAX (MAX (21 - (gint) y, (gint) y - 70), 0);
        const gint d = MAX (dx, dy);
        m[y * W + x] = d == 0 ? 255 : d < 6 ? (guint8) (255 - d * 42) : 0;
      }
  return m;
}

static GPtrArray *
generate (SdclModel *model, const SdclRequest *r)
{
  g_autoptr (GError) error = NULL;
  GPtrArray *images = sdcl_generate (model, r, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (images);
  return images;
}

static SdclImage *
image (GPtrArray *a, guint i)
{
  return a->pdata[i];
}

static gboolean
same_pixels (const SdclImage *a, const SdclImage *b)
{
  return a->width == b->width && a->height == b->height
         && memcmp (a->pixels, b->pixels, (gsize) a->width * a->height * 3) == 0;
}

static void
test_seeds_and_batches (void)
{
  SdclRequest r;
  base_request (&r);
  r.sampler = SDCL_SAMPLER_EULER_A;     /* draws noise every step too */
  r.batch_count = 3;
  g_autoptr (GPtrArray) batch = generate (tiny, &r);
  g_assert_cmpuint (batch->len, ==, 3);
  for (guint i = 0; i < 3; i++)
    {
      g_assert_cmpuint (image (batch, i)->seed, ==, 1234 + i);
      g_assert_cmpuint (image (batch, i)->width, ==, W);
      g_assert_cmpuint (image (batch, i)->height, ==, H);
    }
  g_assert_false (same_pixels (image (batch, 0), image (batch, 1)));

  /* the second image of a batch is the image of its seed alone */
  r.batch_count = 1;
  r.seed = 1235;
  g_autoptr (GPtrArray) one = generate (tiny, &r);
  g_assert_true (same_pixels (image (one, 0), image (batch, 1)));

  /* a random seed is reported, and reproduces the image */
  r.seed = -1;
  g_autoptr (GPtrArray) rnd = generate (tiny, &r);
  r.seed = image (rnd, 0)->seed;
  g_autoptr (GPtrArray) again = generate (tiny, &r);
  g_assert_true (same_pixels (image (rnd, 0), image (again, 0)));

  /* the parameters say what was done */
  const gchar *p = image (batch, 2)->parameters;
  g_assert_true (g_str_has_prefix (p, "a red square on a blue field\nNegative prompt: blurry\n"));
  g_assert_nonnull (strstr (p, "Steps: 4, Sampler: Euler a, CFG scale: 7.5, Seed: 1236, "
                               "Size: 64x96, Model: tiny-sd,"));
}

typedef struct
{
  guint calls, cancel_at, last_step, steps;
  gboolean preview_ok;
} Progress;

static gboolean
on_progress (const SdclProgress *p, gpointer data)
{
  Progress *pr = data;
  pr->calls++;
  if (p->step == 1)
    pr->last_step = 0;      /* the next image of the batch */
  g_assert_cmpuint (p->step, ==, pr->last_step + 1);
  pr->last_step = p->step;
  pr->steps = p->steps;
  if (p->preview)
    {
      /* the longest side is the asked size (or the image's), the aspect kept */
      pr->preview_ok = p->preview_height == 48 && p->preview_width == 32;
      guint64 sum = 0;
      for (guint i = 0; i < p->preview_width * p->preview_height * 3; i++)
        sum += p->preview[i];
      pr->preview_ok = pr->preview_ok && sum > 0;
    }
  return pr->calls != pr->cancel_at;
}

static void
test_progress_and_cancel (void)
{
  SdclRequest r;
  base_request (&r);
  r.steps = 5;
  r.preview_size = 48;
  Progress pr = { 0 };
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) images = sdcl_generate (tiny, &r, on_progress, &pr, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (pr.calls, ==, 5);
  g_assert_cmpuint (pr.steps, ==, 5);
  g_assert_true (pr.preview_ok);

  /* cancel at step 2 of the second image: nothing comes back */
  r.batch_count = 2;
  Progress stop = { .cancel_at = 7 };
  g_autoptr (GPtrArray) none = sdcl_generate (tiny, &r, on_progress, &stop, &error);
  g_assert_null (none);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpuint (stop.calls, ==, 7);
}

static void
expect_error (SdclModel *model, const SdclRequest *r, GQuark domain, gint code,
              const gchar *words)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) images = sdcl_generate (model, r, NULL, NULL, &error);
  g_assert_null (images);
  g_assert_error (error, domain, code);
  if (!strstr (error->message, words))
    sdcl_test_fail ("message \"%s\" does not say \"%s\"", error->message, words);
}

static void
test_bad_requests (void)
{
  SdclRequest r;
  g_autofree guint8 *pic = test_picture ();
  g_autofree guint8 *empty = test_mask (TRUE);

  base_request (&r);
  r.width = 60;
  expect_error (tiny, &r, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_SIZE, "multiples of 8");
  base_request (&r);
  r.steps = 0;
  expect_error (tiny, &r, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_INVALID, "steps");
  base_request (&r);
  r.seed = G_MAXUINT32 + 1LL;
  expect_error (tiny, &r, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_INVALID, "seed");
  base_request (&r);
  r.cfg_scale = -1;
  expect_error (tiny, &r, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_INVALID, "CFG");
  base_request (&r);
  r.sampler = SDCL_SAMPLER_DDIM;
  r.schedule = SDCL_SCHEDULE_KARRAS;
  expect_error (tiny, &r, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_INVALID, "Karras");
  base_request (&r);
  r.sampler = SDCL_SAMPLER_LCM;
  r.steps = 51;
  expect_error (tiny, &r, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_INVALID, "LCM");
  base_request (&r);
  r.prompt = "\xff\xfe";
  expect_error (tiny, &r, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_INVALID, "UTF-8");

  base_request (&r);
  r.mode = SDCL_MODE_IMG2IMG;
  expect_error (tiny, &r, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_INVALID, "init image");
  /* an init image of another size: both sizes named */
  r.init_image = pic;
  r.init_width = H;
  r.init_height = W;
  expect_error (tiny, &r, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_SIZE, "96x64");
  r.init_width = W;
  r.init_height = H;
  r.strength = 1.5;
  expect_error (tiny, &r, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_INVALID, "strength");

  base_request (&r);
  r.mode = SDCL_MODE_INPAINT;
  r.init_image = pic;
  r.init_width = W;
  r.init_height = H;
  expect_error (tiny, &r, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_INVALID, "mask");
  r.mask = empty;
  expect_error (tiny, &r, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_EMPTY_MASK, "empty");
  expect_error (tiny_inpaint, &r, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_EMPTY_MASK, "empty");
}

static void
test_img2img_strength_zero (void)
{
  SdclRequest r;
  base_request (&r);
  g_autofree guint8 *pic = test_picture ();
  r.mode = SDCL_MODE_IMG2IMG;
  r.init_image = pic;
  r.init_width = W;
  r.init_height = H;
  r.width = r.height = 0;    /* the init image's size */
  r.strength = 0;
  g_autoptr (GPtrArray) same = generate (tiny, &r);
  g_assert_cmpmem (image (same, 0)->pixels, W * H * 3, pic, W * H * 3);
  g_assert_nonnull (strstr (image (same, 0)->parameters, "Denoising strength: 0,"));

  r.strength = 0.5;
  g_autoptr (GPtrArray) changed = generate (tiny, &r);
  g_assert_true (memcmp (image (changed, 0)->pixels, pic, W * H * 3) != 0);
}

/* Inpainting keeps every pixel the mask leaves out, with both kinds of
 * model, and blends the soft edge. */
static void
check_inpaint (SdclModel *model, gdouble strength)
{
  SdclRequest r;
  base_request (&r);
  g_autofree guint8 *pic = test_picture ();
  g_autofree guint8 *mask = test_mask (FALSE);
  r.mode = SDCL_MODE_INPAINT;
  r.init_image = pic;
  r.init_width = W;
  r.init_height = H;
  r.mask = mask;
  r.strength = strength;
  g_autoptr (GPtrArray) out = generate (model, &r);
  const guint8 *px = image (out, 0)->pixels;
  guint changed_inside = 0, inside = 0;
  for (guint i = 0; i < W * H; i++)
    {
      if (mask[i] == 0)
        for (guint c = 0; c < 3; c++)
          g_assert_cmpuint (px[3 * i + c], ==, pic[3 * i + c]);
      if (mask[i] == 255)
        {
          inside++;
          changed_inside += memcmp (px + 3 * i, pic + 3 * i, 3) != 0;
        }
    }
  g_assert_cmpuint (changed_inside, >, inside / 2);
}

static void
test_inpaint_keeps_outside (void)
{
  check_inpaint (tiny, 1.0);
  check_inpaint (tiny, 0.75);
  check_inpaint (tiny_inpaint, 1.0);
  check_inpaint (tiny_inpaint, 0.6);
}

static void
test_inpaint_full_mask (void)
{
  SdclRequest r;
  base_request (&r);
  g_autofree guint8 *pic = test_picture ();
  g_autofree guint8 *mask = g_malloc (W * H);
  memset (mask, 255, W * H);
  r.mode = SDCL_MODE_INPAINT;
  r.init_image = pic;
  r.init_width = W;
  r.init_height = H;
  r.mask = mask;
  r.strength = 1.0;
  g_autoptr (GPtrArray) out = generate (tiny_inpaint, &r);
  g_assert_cmpuint (image (out, 0)->width, ==, W);
  /* txt2img with the same model works too (all mask, grey masked image) */
  base_request (&r);
  g_autoptr (GPtrArray) t2i = generate (tiny_inpaint, &r);
  g_assert_cmpuint (t2i->len, ==, 1);
}

/* Sizes that are multiples of 8 but not of the UNet's 4 (latent 9 x 11):
 * the UNet rounds up on the way down and meets the skips on the way up. */
static void
test_odd_latent_size (void)
{
  SdclRequest r;
  base_request (&r);
  r.width = 72;
  r.height = 88;
  r.steps = 2;
  SdclTrace trace = { 0 };
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) out = sdcl_generate_traced (tiny, &r, NULL, NULL, &trace, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (image (out, 0)->width, ==, 72);
  g_assert_cmpuint (image (out, 0)->height, ==, 88);
  g_assert_cmpuint (trace.latent_width, ==, 9);
  g_assert_cmpuint (trace.latent_height, ==, 11);
  g_assert_cmpuint (trace.step_latents->len, ==, 2 * 9 * 11 * 4);
  sdcl_trace_clear (&trace);
}

static gboolean
note_preview (const SdclProgress *p, gpointer data)
{
  guint *size = data;
  size[0] = p->preview_width;
  size[1] = p->preview_height;
  return TRUE;
}

/* More than twice the native size (64 for the tiny model): drawn at the
 * aspect kept with the longer side at 64, then sdcl_image_upscale to the
 * size asked; the parameters say both, previews stay at the drawn size. */
static void
test_upscaled_txt2img (void)
{
  g_assert_cmpuint (sdcl_model_get_info (tiny)->native_size, ==, 64);
  SdclRequest r;
  base_request (&r);
  r.steps = 2;
  r.width = 256;
  r.height = 192;
  r.preview_size = 1000;
  guint w, h, preview[2] = { 0, 0 };
  g_assert_true (sdcl_generate_draw_size (tiny, &r, &w, &h));
  g_assert_cmpuint (w, ==, 64);
  g_assert_cmpuint (h, ==, 48);
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) big = sdcl_generate (tiny, &r, note_preview, preview, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (image (big, 0)->width, ==, 256);
  g_assert_cmpuint (image (big, 0)->height, ==, 192);
  g_assert_cmpuint (preview[0], ==, 64);
  g_assert_cmpuint (preview[1], ==, 48);
  const gchar *p = image (big, 0)->parameters;
  if (!strstr (p, "Seed: 1234, Size: 64x48, Model: tiny-sd,")
      || !strstr (p, ", Postprocess upscale to: 256x192, Postprocess upscaler: sdcl edge, "))
    sdcl_test_fail ("the parameters do not give the drawn size and the upscale: %s", p);

  /* the same request at the drawn size, enlarged, is the same image */
  r.width = 64;
  r.height = 48;
  g_assert_false (sdcl_generate_draw_size (tiny, &r, &w, &h));
  g_autoptr (GPtrArray) small = generate (tiny, &r);
  g_assert_null (strstr (image (small, 0)->parameters, "Postprocess"));
  g_autofree guint8 *enlarged = sdcl_image_upscale (image (small, 0)->pixels, 64, 48, 256, 192);
  g_assert_cmpmem (image (big, 0)->pixels, 256 * 192 * 3, enlarged, 256 * 192 * 3);

  /* sizes: twice the native size is drawn as asked; the short side is
     rounded to a multiple of 8, at least 16; img2img keeps its size */
  const guint sizes[][4] = { { 128, 128, 128, 128 }, { 136, 64, 64, 32 }, { 520, 136, 64, 16 },
                             { 136, 520, 16, 64 }, { 1024, 1024, 64, 64 }, { 0, 0, 64, 64 } };
  for (guint k = 0; k < G_N_ELEMENTS (sizes); k++)
    {
      r.width = sizes[k][0];
      r.height = sizes[k][1];
      const gboolean up = sdcl_generate_draw_size (tiny, &r, &w, &h);
      if (w != sizes[k][2] || h != sizes[k][3] || up != (sizes[k][0] > 128 || sizes[k][1] > 128))
        sdcl_test_fail ("%ux%u is drawn at %ux%u (%s), not %ux%u", sizes[k][0], sizes[k][1], w, h,
                        up ? "enlarged" : "as is", sizes[k][2], sizes[k][3]);
    }
  r.mode = SDCL_MODE_IMG2IMG;          /* the size is all that is looked at */
  r.width = r.height = 0;
  r.init_width = 256;
  r.init_height = 256;
  g_assert_false (sdcl_generate_draw_size (tiny, &r, &w, &h));
  g_assert_cmpuint (w, ==, 256);
}

/* SD 1.5's scheduler config names no spacing: each sampler then spaces its
 * timesteps as its diffusers class does by default (values from diffusers
 * 0.42 with runwayml's scheduler_config.json) */
static void
test_scheduler_defaults (void)
{
  g_autofree gchar *path = g_build_filename (SDCL_SOURCE_DIR, "models", "configs", "sd15",
                                             "scheduler.json", NULL);
  g_autofree gchar *json = NULL;
  g_assert_true (g_file_get_contents (path, &json, NULL, NULL));
  SdclScheduleConfig c;
  g_assert_true (sdcl_schedule_config_parse (&c, json, NULL));
  struct { SdclSampler sampler; gdouble first, second, last; } want[] = {
    { SDCL_SAMPLER_EULER, 999, 946.42105, 0 },       /* linspace */
    { SDCL_SAMPLER_EULER_A, 999, 946.42105, 0 },
    { SDCL_SAMPLER_DPMPP_2M, 999, 949, 50 },         /* linspace over 21, last dropped */
    { SDCL_SAMPLER_DDIM, 951, 901, 1 },              /* leading + steps_offset 1 */
  };
  for (guint i = 0; i < G_N_ELEMENTS (want); i++)
    {
      g_autoptr (SdclScheduler) s = sdcl_scheduler_new (&c, want[i].sampler, SDCL_SCHEDULE_DEFAULT,
                                                        20, 0, NULL);
      g_assert_cmpfloat_with_epsilon (sdcl_scheduler_timestep (s, 0), want[i].first, 1e-4);
      g_assert_cmpfloat_with_epsilon (sdcl_scheduler_timestep (s, 1), want[i].second, 1e-4);
      g_assert_cmpfloat_with_epsilon (sdcl_scheduler_timestep (s, 19), want[i].last, 1e-4);
    }
  /* with no config at all, the same */
  g_assert_true (sdcl_schedule_config_parse (&c, NULL, NULL));
  g_autoptr (SdclScheduler) e = sdcl_scheduler_new (&c, SDCL_SAMPLER_EULER, SDCL_SCHEDULE_DEFAULT,
                                                    20, 0, NULL);
  g_assert_cmpfloat_with_epsilon (sdcl_scheduler_timestep (e, 1), 946.42105, 1e-4);
}

static void
test_sampler_names (void)
{
  SdclSampler s;
  SdclSchedule k;
  g_assert_true (sdcl_sampler_from_name ("DPM++ 2M Karras", &s, &k, NULL));
  g_assert_cmpint (s, ==, SDCL_SAMPLER_DPMPP_2M);
  g_assert_cmpint (k, ==, SDCL_SCHEDULE_KARRAS);
  g_assert_true (sdcl_sampler_from_name ("euler_a", &s, &k, NULL));
  g_assert_cmpint (s, ==, SDCL_SAMPLER_EULER_A);
  g_assert_cmpint (k, ==, SDCL_SCHEDULE_DEFAULT);
  g_assert_cmpstr (sdcl_sampler_name (SDCL_SAMPLER_DPMPP_2M, SDCL_SCHEDULE_KARRAS), ==,
                   "dpmpp_2m_karras");
  g_assert_cmpstr (sdcl_sampler_display_name (SDCL_SAMPLER_EULER_A), ==, "Euler a");
  g_autoptr (GError) error = NULL;
  g_assert_false (sdcl_sampler_from_name ("heun", &s, &k, &error));
  g_assert_error (error, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "dpmpp_2m_karras"));
}

/* ---- SDCL_MODEL_ON_DEMAND ----------------------------------------------------------- */

typedef struct
{
  SdclModel *model;
  gboolean   encodes;      /* the request encodes an image (the VAE encoder was needed) */
  guint      calls;
  gboolean   only_unet;    /* at every step: the UNet there, nothing else */
} OnDemand;

static SdclModelParts
parts_on_device (SdclModel *m)
{
  const SdclVaeParts v = sdcl_vae_parts (sdcl_model_vae (m));
  return (sdcl_model_clip (m) ? SDCL_PART_TEXT_ENCODER : 0)
         | (sdcl_model_unet (m) ? SDCL_PART_UNET : 0)
         | (v & SDCL_VAE_ENCODER ? SDCL_PART_VAE_ENCODER : 0)
         | (v & SDCL_VAE_DECODER ? SDCL_PART_VAE_DECODER : 0);
}

static gboolean
on_demand_step (const SdclProgress *p, gpointer data)
{
  OnDemand *d = data;
  d->calls++;
  d->only_unet = d->only_unet && parts_on_device (d->model) == SDCL_PART_UNET;
  return TRUE;
}

/* The request on the resident model and on the on-demand one: the same
 * pixels, each part on the device only in its phase, and nothing of the
 * model left there afterwards. */
static void
check_on_demand (SdclModel *resident, SdclModel *od, const SdclRequest *r)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) want = generate (resident, r);
  sdcl_engine_trim (engine);
  const guint64 before = sdcl_engine_memory_in_use (engine);
  OnDemand d = { od, FALSE, 0, TRUE };
  g_autoptr (GPtrArray) got = sdcl_generate (od, r, on_demand_step, &d, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (got->len, ==, want->len);
  for (guint i = 0; i < got->len; i++)
    g_assert_true (same_pixels (image (got, i), image (want, i)));
  g_assert_cmpuint (d.calls, >, 0);
  g_assert_true (d.only_unet);
  g_assert_cmpuint (parts_on_device (od), ==, 0);
  sdcl_engine_trim (engine);
  g_assert_cmpuint (sdcl_engine_memory_in_use (engine), ==, before);
}

static void
test_on_demand (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *p4 = sdcl_test_fixture ("models/tiny-sd.safetensors");
  g_autofree gchar *p9 = sdcl_test_fixture ("models/tiny-sd-inpaint.safetensors");
  g_autoptr (SdclModel) od4 = sdcl_model_load_with_policy (engine, p4, NULL, SDCL_MODEL_ON_DEMAND,
                                                           &error);
  g_assert_no_error (error);
  g_autoptr (SdclModel) od9 = sdcl_model_load_with_policy (engine, p9, NULL, SDCL_MODEL_ON_DEMAND,
                                                           &error);
  g_assert_no_error (error);
  /* loading checked everything and uploaded nothing */
  g_assert_cmpuint (parts_on_device (od4), ==, 0);
  g_assert_cmpuint (sdcl_model_get_info (od4)->unet_params, ==,
                    sdcl_model_get_info (tiny)->unet_params);

  g_autofree guint8 *pic = test_picture ();
  g_autofree guint8 *mask = test_mask (FALSE);
  SdclRequest r;
  base_request (&r);
  r.sampler = SDCL_SAMPLER_EULER_A;
  r.batch_count = 2;
  check_on_demand (tiny, od4, &r);
  check_on_demand (tiny_inpaint, od9, &r);      /* encodes a grey picture */
  /* a second request reads the files again */
  r.batch_count = 1;
  check_on_demand (tiny, od4, &r);

  base_request (&r);
  r.mode = SDCL_MODE_IMG2IMG;
  r.init_image = pic;
  r.init_width = W;
  r.init_height = H;
  r.strength = 0.6;
  check_on_demand (tiny, od4, &r);
  r.mode = SDCL_MODE_INPAINT;
  r.mask = mask;
  r.strength = 1.0;
  check_on_demand (tiny, od4, &r);
  check_on_demand (tiny_inpaint, od9, &r);
}

/* The files of an on-demand model changed or went away between requests:
 * a clear error, and the next request after they are back works. */
static void
test_on_demand_files_changed (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *p4 = sdcl_test_fixture ("models/tiny-sd.safetensors");
  g_autofree gchar *p9 = sdcl_test_fixture ("models/tiny-sd-inpaint.safetensors");
  g_autofree gchar *dir = g_dir_make_tmp ("sdcl-pipeline-XXXXXX", &error);
  g_assert_no_error (error);
  g_autofree gchar *path = g_build_filename (dir, "model.safetensors", NULL);
  g_autofree gchar *bytes4 = NULL, *bytes9 = NULL;
  gsize len4, len9;
  g_assert_true (g_file_get_contents (p4, &bytes4, &len4, NULL));
  g_assert_true (g_file_get_contents (p9, &bytes9, &len9, NULL));
  g_assert_true (g_file_set_contents (path, bytes4, len4, NULL));
  g_autoptr (SdclModel) od = sdcl_model_load_with_policy (engine, path, NULL,
                                                          SDCL_MODEL_ON_DEMAND, &error);
  g_assert_no_error (error);
  SdclRequest r;
  base_request (&r);

  g_assert_true (g_file_set_contents (path, bytes9, len9, NULL));
  g_autoptr (GPtrArray) changed = sdcl_generate (od, &r, NULL, NULL, &error);
  g_assert_null (changed);
  g_assert_error (error, SDCL_MODEL_ERROR, SDCL_MODEL_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "changed on disk"));
  g_clear_error (&error);

  g_assert_cmpint (g_unlink (path), ==, 0);
  g_autoptr (GPtrArray) gone = sdcl_generate (od, &r, NULL, NULL, &error);
  g_assert_null (gone);
  g_assert_error (error, SDCL_MODEL_ERROR, SDCL_MODEL_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_assert_true (g_file_set_contents (path, bytes4, len4, NULL));
  g_autoptr (GPtrArray) back = generate (od, &r);
  g_autoptr (GPtrArray) want = generate (tiny, &r);
  g_assert_true (same_pixels (image (back, 0), image (want, 0)));
  g_assert_cmpint (g_unlink (path), ==, 0);
  g_assert_cmpint (g_rmdir (dir), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_autoptr (GError) error = NULL;
  engine = sdcl_engine_new (NULL, &error);
  g_assert_no_error (error);
  g_autofree gchar *p4 = sdcl_test_fixture ("models/tiny-sd.safetensors");
  g_autofree gchar *p9 = sdcl_test_fixture ("models/tiny-sd-inpaint.safetensors");
  tiny = sdcl_model_load (engine, p4, NULL, &error);
  g_assert_no_error (error);
  tiny_inpaint = sdcl_model_load (engine, p9, NULL, &error);
  g_assert_no_error (error);

  g_test_add_func ("/pipeline/sampler-names", test_sampler_names);
  g_test_add_func ("/pipeline/scheduler-defaults", test_scheduler_defaults);
  g_test_add_func ("/pipeline/seeds-and-batches", test_seeds_and_batches);
  g_test_add_func ("/pipeline/progress-and-cancel", test_progress_and_cancel);
  g_test_add_func ("/pipeline/bad-requests", test_bad_requests);
  g_test_add_func ("/pipeline/img2img-strength-zero", test_img2img_strength_zero);
  g_test_add_func ("/pipeline/inpaint-keeps-outside", test_inpaint_keeps_outside);
  g_test_add_func ("/pipeline/inpaint-full-mask", test_inpaint_full_mask);
  g_test_add_func ("/pipeline/odd-latent-size", test_odd_latent_size);
  g_test_add_func ("/pipeline/upscaled-txt2img", test_upscaled_txt2img);
  g_test_add_func ("/pipeline/on-demand", test_on_demand);
  g_test_add_func ("/pipeline/on-demand-files-changed", test_on_demand_files_changed);
  const int status = g_test_run ();
  sdcl_model_free (tiny);
  sdcl_model_free (tiny_inpaint);
  sdcl_engine_free (engine);
  return status;
}
