/* bench-models.c — full-size SD 1.5 model parts on this device: model load,
 * text encoder, one UNet forward (per-block split), VAE decode, each with
 * its time, device memory and process memory. Random weights of the real
 * shapes (fullsize.h), made once into the build folder.
 *
 *   bench-models [MODEL.safetensors] [text|unet|vae] [LATENT_SIZE]
 *   (default: build/sd15-random.safetensors, every part, the UNet at 64x64
 *   latents: 512x512 images; 32 runs it at 256x256's)
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fullsize.h"
#include "model.h"
#include "testutil.h"

static SdclEngine *engine;

static void
reset_peaks (void)
{
  /* "5" resets the peak RSS (Linux 4.0+); harmless where unsupported */
  g_file_set_contents ("/proc/self/clear_refs", "5", 1, NULL);
  sdcl_engine_reset_peak (engine);
}

static void
report (const gchar *what, gdouble seconds)
{
  g_print ("%-34s %9.3f s   device peak %7.0f MiB   process peak RSS %7.0f MiB\n", what, seconds,
           sdcl_engine_memory_peak (engine) / 1048576.0, sdcl_test_rss_peak () / 1048576.0);
}

static SdclTensor *
seeded_tensor (guint32 seed, gint64 w, gint64 h, gint64 c, gint64 n)
{
  g_autoptr (GError) error = NULL;
  g_autofree gfloat *v = sdcl_test_seeded (seed, w * h * c * n, 1.0f, 0.0f);
  SdclTensor *t = sdcl_tensor_new_4d (engine, SDCL_DTYPE_F32, w, h, c, n, &error);
  if (!t || !sdcl_tensor_write_f32 (t, v, &error))
    sdcl_test_fail ("%s", error->message);
  return t;
}

#define CHECK(x) do { if (!(x)) sdcl_test_fail ("%s", error->message); } while (0)

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  g_autoptr (GError) error = NULL;
  if (argc > 4 || (argc > 1 && argv[1][0] == '-'))
    {
      g_printerr ("usage: bench-models [MODEL.safetensors] [text|unet|vae] [LATENT_SIZE]\n");
      return 2;
    }
  const gchar *path = argc > 1 ? argv[1] : "build/sd15-random.safetensors";
  const gchar *only = argc > 2 ? argv[2] : NULL;
  /* a third argument sets the UNet's latent size (64: 512x512 images) */
  const gint side = argc > 3 ? CLAMP (atoi (argv[3]), 8, 256) / 8 * 8 : 64;
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_print ("writing random SD 1.5-shaped weights to %s ...\n", path);
      CHECK (sdcl_test_write_random_model (SDCL_SOURCE_DIR "/models/configs/sd15", path, &error));
    }
  engine = sdcl_engine_new (NULL, &error);
  CHECK (engine);
  CHECK (sdcl_engine_build_all (engine, &error));
  g_print ("device: %s\n\n", sdcl_engine_device (engine)->name);

  /* the best of three loads, as the op benchmarks take the best of their
     runs: one load on this host read anywhere from 2.5 to 3.5 s */
  g_autoptr (SdclModel) model = NULL;
  gint64 t0 = 0;
  gdouble load_best = G_MAXDOUBLE;
  for (gint i = 0; i < 3; i++)
    {
      g_clear_pointer (&model, sdcl_model_free);
      reset_peaks ();
      t0 = g_get_monotonic_time ();
      model = sdcl_model_load (engine, path, NULL, &error);
      CHECK (model);
      CHECK (sdcl_engine_finish (engine, &error));
      load_best = MIN (load_best, (g_get_monotonic_time () - t0) / 1e6);
    }
  report ("model load (f16 weights, best of 3)", load_best);

  /* text encoder: one 77-token chunk (a prompt and the empty prompt) */
  gint32 ids[2 * 77];
  for (gint i = 0; i < 2 * 77; i++)
    ids[i] = i % 77 == 0 ? 49406 : i % 77 < 9 ? 320 + 97 * (i % 77) : 49407;
  reset_peaks ();
  t0 = g_get_monotonic_time ();
  g_autoptr (SdclTensor) ctx = sdcl_clip_forward (sdcl_model_clip (model), ids, 2, 1, &error);
  CHECK (ctx && sdcl_engine_finish (engine, &error));
  report ("text encoder, batch 2 x 77", (g_get_monotonic_time () - t0) / 1e6);

  /* UNet at 64x64 latents (512x512 images) unless told, one text and two
     (a CFG step: one input meets both texts, as the pipeline runs it) */
  for (gint batch = 1; batch <= 2 && (!only || g_str_equal (only, "unet")); batch++)
    {
      g_autoptr (SdclTensor) x = seeded_tensor (11, side, side, 4, 1);
      const gint64 ne[4] = { 768, 77, batch, 1 };
      g_autoptr (SdclTensor) c = sdcl_tensor_view (ctx, ne, ctx->nb, 0, &error);
      const gfloat t[2] = { 500, 500 };
      g_autoptr (GArray) blocks = g_array_new (FALSE, FALSE, sizeof (SdclBlockTime));
      if (batch == 1)
        sdcl_unet_time_blocks (sdcl_model_unet (model), blocks);
      reset_peaks ();
      t0 = g_get_monotonic_time ();
      g_autoptr (SdclTensor) y = sdcl_unet_forward (sdcl_model_unet (model), x, t, c, &error);
      CHECK (y && sdcl_engine_finish (engine, &error));
      g_autofree gchar *what = g_strdup_printf ("UNet forward %dx%d, %s", side, side,
                                                batch == 2 ? "two texts (CFG step)" : "one text");
      report (what, (g_get_monotonic_time () - t0) / 1e6);
      sdcl_unet_time_blocks (sdcl_model_unet (model), NULL);
      for (guint i = 0; i < blocks->len; i++)
        {
          const SdclBlockTime *b = &g_array_index (blocks, SdclBlockTime, i);
          g_autofree gchar *label = b->level >= 0 ? g_strdup_printf ("%s %d", b->block, b->level)
                                                  : g_strdup (b->block);
          g_print ("    %-20s %8.3f s\n", label, b->seconds);
        }
    }

  /* VAE decode 64x64 latents -> 512x512 */
  if (!only || g_str_equal (only, "vae"))
  {
    g_autoptr (SdclTensor) z = seeded_tensor (12, 64, 64, 4, 1);
    reset_peaks ();
    t0 = g_get_monotonic_time ();
    g_autoptr (SdclTensor) img = sdcl_vae_decode (sdcl_model_vae (model), z, &error);
    CHECK (img && sdcl_engine_finish (engine, &error));
    report ("VAE decode 512x512", (g_get_monotonic_time () - t0) / 1e6);

    /* 1024x1024 through tiles of the size that fits (sdcl_vae_decode_tiled
     * chooses it, as the pipeline does) */
    g_autoptr (SdclTensor) z2 = seeded_tensor (13, 128, 128, 4, 1);
    reset_peaks ();
    t0 = g_get_monotonic_time ();
    g_autoptr (SdclTensor) img2 = sdcl_vae_decode_tiled (sdcl_model_vae (model), z2, 0, 0,
                                                         &error);
    CHECK (img2 && sdcl_engine_finish (engine, &error));
    report ("VAE decode 1024x1024 (tiled)", (g_get_monotonic_time () - t0) / 1e6);
  }
  return 0;
}
