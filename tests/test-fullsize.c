/* test-fullsize.c — one full-size check against diffusers: random weights
 * of the real SD 1.5 shapes (made by make-random-model into the build
 * folder, about 2 GB, not committed) through the text encoder, one UNet
 * forward at 64x64 latents and one VAE decode to 512x512, against
 * tests/fixtures/fullsize-ref.safetensors (tests/reference/
 * make_fullsize_reference.py; PyTorch float32). Suite `fullsize`: about
 * three minutes on a 2-core CPU, so `make test` leaves it out;
 * `make test SUITE=fullsize` runs it.
 */
#include "fullsize.h"
#include "model.h"
#include "prompt.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

#define PROMPT "a photograph of an astronaut riding a horse on the moon, highly detailed"

/* The same bounds as the tiny models' although the reference runs in
 * float32 here; measured: text encoder 1.6e-6, UNet 3.7e-6, VAE 1.4e-5
 * of the output's scale. */
#define TOL_REL  1e-4
#define TOL_NMSE 1e-9

static SdclEngine *engine;
static SdclModel *model;
static SdclSafetensors *reference;

static gfloat *
ref (const gchar *name, gint64 *n)
{
  g_autoptr (GError) error = NULL;
  gfloat *v = sdcl_safetensors_read_f32 (reference, name, n, &error);
  g_assert_no_error (error);
  return v;
}

static SdclTensor *
seeded_input (guint32 seed, gint64 w, gint64 h, gint64 c, gint64 n)
{
  g_autoptr (GError) error = NULL;
  g_autofree gfloat *v = sdcl_test_seeded (seed, w * h * c * n, 1.0f, 0.0f);
  SdclTensor *t = sdcl_tensor_new_4d (engine, SDCL_DTYPE_F32, w, h, c, n, &error);
  g_assert_no_error (error);
  sdcl_tensor_write_f32 (t, v, &error);
  g_assert_no_error (error);
  return t;
}

static void
test_text_encoder (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclPromptChunks) c = sdcl_prompt_chunks_new (PROMPT, 1, &error);
  g_assert_no_error (error);
  gint64 n;
  g_autofree gfloat *ids = ref ("te.ids", &n);
  for (gint i = 0; i < 77; i++)
    g_assert_cmpint (c->ids[i], ==, (gint32) ids[i]);
  const gchar *keys[2] = { "te.hidden", "te.hidden_skip2" };
  for (gint skip = 1; skip <= 2; skip++)
    {
      g_autoptr (SdclTensor) h = sdcl_clip_forward (sdcl_model_clip (model), c->ids, 1, skip, &error);
      g_assert_no_error (error);
      g_autofree gfloat *got = sdcl_tensor_read_f32 (h, &error);
      g_autofree gfloat *want = ref (keys[skip - 1], &n);
      g_assert_cmpint (n, ==, sdcl_tensor_numel (h));
      g_autofree gchar *what = g_strdup_printf ("SD 1.5 text encoder, clip skip %d", skip);
      sdcl_test_assert_close (what, got, want, n, TOL_REL, TOL_NMSE);
    }
}

static void
test_unet (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclTensor) x = seeded_input (21, 64, 64, 4, 1);
  g_autoptr (SdclTensor) ctx = seeded_input (22, 768, 77, 1, 1);
  const gfloat t = 500;
  const gint64 t0 = g_get_monotonic_time ();
  g_autoptr (SdclTensor) y = sdcl_unet_forward (sdcl_model_unet (model), x, &t, ctx, &error);
  g_assert_no_error (error);
  g_autofree gfloat *got = sdcl_tensor_read_f32 (y, &error);
  g_test_message ("UNet forward 64x64: %.1f s", (g_get_monotonic_time () - t0) / 1e6);
  gint64 n;
  g_autofree gfloat *want = ref ("unet.out", &n);
  g_assert_cmpint (n, ==, sdcl_tensor_numel (y));
  sdcl_test_assert_close ("SD 1.5 UNet 64x64", got, want, n, TOL_REL, TOL_NMSE);
}

static void
test_vae_decode (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclTensor) z = seeded_input (23, 64, 64, 4, 1);
  const gint64 t0 = g_get_monotonic_time ();
  g_autoptr (SdclTensor) img = sdcl_vae_decode (sdcl_model_vae (model), z, &error);
  g_assert_no_error (error);
  g_autofree gfloat *all = sdcl_tensor_read_f32 (img, &error);
  g_test_message ("VAE decode 512x512: %.1f s", (g_get_monotonic_time () - t0) / 1e6);
  g_assert_cmpint (img->ne[0], ==, 512);
  g_assert_cmpint (img->ne[2], ==, 3);
  gint64 n;
  g_autofree gfloat *idx = ref ("vae.idx", &n);
  g_autofree gfloat *want = ref ("vae.val", NULL);
  g_autofree gfloat *got = g_new (gfloat, n);
  for (gint64 i = 0; i < n; i++)
    got[i] = all[(gint64) idx[i]];
  sdcl_test_assert_close ("SD 1.5 VAE decode 512x512 (sampled)", got, want, n, TOL_REL, TOL_NMSE);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_autoptr (GError) error = NULL;
  const gchar *path = g_getenv ("SDCL_FULLSIZE_MODEL");
  if (!path)
    path = SDCL_BUILD_DIR "/sd15-random.safetensors";
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_test_message ("writing random SD 1.5-shaped weights to %s", path);
      sdcl_test_write_random_model (SDCL_SOURCE_DIR "/models/configs/sd15", path, &error);
      g_assert_no_error (error);
    }
  g_autofree gchar *ref_path = sdcl_test_fixture ("fullsize-ref.safetensors");
  reference = sdcl_safetensors_open (ref_path, &error);
  g_assert_no_error (error);
  engine = sdcl_engine_new (NULL, &error);
  g_assert_no_error (error);
  model = sdcl_model_load (engine, path, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (sdcl_model_get_info (model)->kind, ==, SDCL_MODEL_KIND_SD1);

  g_test_add_func ("/fullsize/text-encoder", test_text_encoder);
  g_test_add_func ("/fullsize/unet-64x64", test_unet);
  g_test_add_func ("/fullsize/vae-decode-512", test_vae_decode);
  const int rc = g_test_run ();
  sdcl_model_free (model);
  sdcl_engine_free (engine);
  sdcl_safetensors_free (reference);
  return rc;
}
