/* test-models.c — the SD 1.x model parts against diffusers/transformers:
 * tiny random-weight models in both checkpoint layouts (made by
 * tests/reference/make_model_fixtures.py), the name table, configs read
 * from shapes, tiled VAE, and the files that must be refused.
 *
 * References are computed in float64 on weights that are exact in f16,
 * bf16 and f32, so every file dtype must give the same numbers; the engine
 * computes in f32. Tolerances: max |error| / max |reference| and NMSE.
 */
#include "model.h"
#include "prompt.h"
#include "testutil.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

static SdclEngine *engine;

#define TOL_REL  1e-4   /* max abs error relative to the output's max */
#define TOL_NMSE 1e-9

/* ---- helpers ------------------------------------------------------------------- */

static gchar *
fixture (const gchar *name)
{
  g_autofree gchar *rel = g_build_filename ("models", name, NULL);
  return sdcl_test_fixture (rel);
}

static SdclSafetensors *reference;

static gfloat *
ref_tensor (const gchar *name, const SdclSafetensorsEntry **entry)
{
  g_autoptr (GError) error = NULL;
  if (entry)
    {
      *entry = sdcl_safetensors_get (reference, name);
      g_assert_nonnull (*entry);
    }
  gfloat *v = sdcl_safetensors_read_f32 (reference, name, NULL, &error);
  g_assert_no_error (error);
  return v;
}

/* A device tensor from a reference tensor (PyTorch order, outermost first,
 * is the engine's innermost-first order read backwards). */
static SdclTensor *
ref_upload (const gchar *name)
{
  const SdclSafetensorsEntry *e;
  g_autofree gfloat *v = ref_tensor (name, &e);
  gint64 ne[4] = { 1, 1, 1, 1 };
  for (guint i = 0; i < e->n_dims; i++)
    ne[i] = e->shape[e->n_dims - 1 - i];
  g_autoptr (GError) error = NULL;
  SdclTensor *t = sdcl_tensor_new (engine, SDCL_DTYPE_F32, 4, ne, &error);
  g_assert_no_error (error);
  sdcl_tensor_write_f32 (t, v, &error);
  g_assert_no_error (error);
  return t;
}

static gint32 *
ref_ids (const gchar *name, gint *batch)
{
  const SdclSafetensorsEntry *e;
  g_autofree gfloat *v = ref_tensor (name, &e);
  *batch = e->shape[0];
  gint32 *ids = g_new (gint32, e->numel);
  for (gint64 i = 0; i < e->numel; i++)
    ids[i] = (gint32) v[i];
  return ids;
}

static void
assert_matches (const gchar *what, SdclTensor *got, const gchar *ref_name, gdouble tol_rel,
                gdouble tol_nmse)
{
  g_assert_nonnull (got);
  const SdclSafetensorsEntry *e;
  g_autofree gfloat *want = ref_tensor (ref_name, &e);
  g_assert_cmpint (sdcl_tensor_numel (got), ==, e->numel);
  for (guint i = 0; i < e->n_dims; i++)
    g_assert_cmpint (got->ne[i], ==, e->shape[e->n_dims - 1 - i]);
  g_autoptr (GError) error = NULL;
  g_autofree gfloat *v = sdcl_tensor_read_f32 (got, &error);
  g_assert_no_error (error);
  sdcl_test_assert_close (what, v, want, e->numel, tol_rel, tol_nmse);
}

static SdclModel *
load (const gchar *name, const gchar *vae)
{
  g_autofree gchar *path = fixture (name);
  g_autofree gchar *vae_path = vae ? fixture (vae) : NULL;
  g_autoptr (GError) error = NULL;
  SdclModel *m = sdcl_model_load (engine, path, vae_path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (m);
  return m;
}

/* ---- the three parts ----------------------------------------------------------- */

static void
check_text_encoder (SdclModel *m, const gchar *layout)
{
  g_autoptr (GError) error = NULL;
  gint batch;
  g_autofree gint32 *ids = ref_ids ("te.ids", &batch);
  g_autofree gchar *what1 = g_strdup_printf ("text encoder, %s, clip skip 1", layout);
  g_autofree gchar *what2 = g_strdup_printf ("text encoder, %s, clip skip 2", layout);
  g_autofree gchar *what3 = g_strdup_printf ("text encoder, %s, high token ids", layout);
  g_autoptr (SdclTensor) h1 = sdcl_clip_forward (sdcl_model_clip (m), ids, batch, 1, &error);
  g_assert_no_error (error);
  assert_matches (what1, h1, "te.hidden", TOL_REL, TOL_NMSE);
  g_autoptr (SdclTensor) h2 = sdcl_clip_forward (sdcl_model_clip (m), ids, batch, 2, &error);
  g_assert_no_error (error);
  assert_matches (what2, h2, "te.hidden_skip2", TOL_REL, TOL_NMSE);
  g_autofree gint32 *long_ids = ref_ids ("te.ids_long", &batch);
  g_autoptr (SdclTensor) h3 = sdcl_clip_forward (sdcl_model_clip (m), long_ids, batch, 1, &error);
  g_assert_no_error (error);
  assert_matches (what3, h3, "te.hidden_long", TOL_REL, TOL_NMSE);
}

static void
check_unet (SdclModel *m, const gchar *key, const gchar *layout)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *sn = g_strdup_printf ("%s.sample", key);
  g_autofree gchar *tn = g_strdup_printf ("%s.timesteps", key);
  g_autofree gchar *cn = g_strdup_printf ("%s.context", key);
  g_autofree gchar *on = g_strdup_printf ("%s.out", key);
  g_autoptr (SdclTensor) x = ref_upload (sn);
  g_autoptr (SdclTensor) ctx = ref_upload (cn);
  g_autofree gfloat *t = ref_tensor (tn, NULL);
  g_autoptr (SdclTensor) y = sdcl_unet_forward (sdcl_model_unet (m), x, t, ctx, &error);
  g_assert_no_error (error);
  g_autofree gchar *what = g_strdup_printf ("UNet %s, %s", key, layout);
  assert_matches (what, y, on, TOL_REL, TOL_NMSE);

  /* the text projected once serves every step as the context did */
  SdclUnet *unet = sdcl_model_unet (m);
  g_autoptr (SdclUnetText) text = sdcl_unet_text_new (unet, ctx, &error);
  g_assert_no_error (error);
  g_autofree gfloat *want = sdcl_tensor_read_f32 (y, &error);
  for (gint i = 0; i < 2; i++)
    {
      g_autoptr (SdclTensor) yt = sdcl_unet_forward_text (unet, x, t, text, &error);
      g_assert_no_error (error);
      g_autofree gfloat *got = sdcl_tensor_read_f32 (yt, &error);
      g_assert_no_error (error);
      g_assert_cmpmem (got, sdcl_tensor_numel (yt) * sizeof (gfloat), want,
                       sdcl_tensor_numel (y) * sizeof (gfloat));
    }
  /* one input meeting every text of the batch (CFG's halves share their
     latents): the same as the input repeated, each copy at its text (a
     fixture's single text taken twice) */
  const gint64 one_ne[4] = { x->ne[0], x->ne[1], x->ne[2], 1 };
  g_autoptr (SdclTensor) x0 = sdcl_tensor_view (x, one_ne, x->nb, 0, &error);
  g_autoptr (SdclTensor) ctx_n = ctx->ne[2] >= 2 ? sdcl_tensor_view (ctx, ctx->ne, ctx->nb, 0, &error)
                                                 : sdcl_repeat (ctx, 2, 2, &error);
  g_autoptr (SdclUnetText) text_n = ctx_n ? sdcl_unet_text_new (unet, ctx_n, &error) : NULL;
  const gint64 n_texts = ctx_n ? ctx_n->ne[2] : 0;
  g_autoptr (SdclTensor) xx = x0 ? sdcl_repeat (x0, 3, n_texts, &error) : NULL;
  g_assert_no_error (error);
  g_autofree gfloat *t0 = g_new (gfloat, n_texts);
  for (gint64 i = 0; i < n_texts; i++)
    t0[i] = t[0];
  g_autoptr (SdclTensor) y_rep = sdcl_unet_forward_text (unet, xx, t0, text_n, &error);
  g_assert_no_error (error);
  g_autoptr (SdclTensor) y_one = sdcl_unet_forward_text (unet, x0, t0, text_n, &error);
  g_assert_no_error (error);
  g_assert_true (sdcl_tensor_same_shape (y_one, y_rep));
  g_autofree gfloat *v_rep = sdcl_tensor_read_f32 (y_rep, &error);
  g_autofree gfloat *v_one = sdcl_tensor_read_f32 (y_one, &error);
  g_assert_no_error (error);
  g_autofree gchar *what_one = g_strdup_printf ("UNet %s, %s, one input for %" G_GINT64_FORMAT
                                                " texts", key, layout, n_texts);
  sdcl_test_assert_close (what_one, v_one, v_rep, sdcl_tensor_numel (y_rep), TOL_REL, TOL_NMSE);
  g_assert_cmpmem (v_one, sdcl_tensor_numel (y_one) * sizeof (gfloat), v_rep,
                   sdcl_tensor_numel (y_rep) * sizeof (gfloat));

  /* a text whose batch is not a multiple of the input's, or with the
     wrong features, is refused */
  const gint64 odd_ne[4] = { ctx->ne[0], ctx->ne[1], 1, ctx->ne[3] };
  g_autoptr (SdclTensor) ctx1 = sdcl_tensor_view (ctx, odd_ne, ctx->nb, 0, &error);
  g_autoptr (SdclTensor) ctx3 = ctx1 ? sdcl_repeat (ctx1, 2, 3, &error) : NULL;
  g_autoptr (SdclUnetText) text_odd = ctx3 ? sdcl_unet_text_new (unet, ctx3, &error) : NULL;
  g_autoptr (SdclTensor) x2 = sdcl_repeat (x0, 3, 2, &error);
  g_assert_no_error (error);
  g_autoptr (SdclTensor) none = sdcl_unet_forward_text (unet, x2, t0, text_odd, &error);
  g_assert_null (none);
  g_assert_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE);
  g_clear_error (&error);
  const gint64 short_ne[4] = { ctx->ne[0] - 1, ctx->ne[1], ctx->ne[2], ctx->ne[3] };
  g_autoptr (SdclTensor) narrow = sdcl_tensor_view (ctx, short_ne, ctx->nb, 0, &error);
  g_assert_no_error (error);
  g_autoptr (SdclUnetText) text3 = sdcl_unet_text_new (unet, narrow, &error);
  g_assert_null (text3);
  g_assert_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE);
}

static void
check_vae (SdclModel *m, const gchar *key, const gchar *layout)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *image = g_strdup_printf ("%s.image", key);
  g_autofree gchar *mean_n = g_strdup_printf ("%s.mean", key);
  g_autofree gchar *logvar_n = g_strdup_printf ("%s.logvar", key);
  g_autofree gchar *latent = g_strdup_printf ("%s.latent", key);
  g_autofree gchar *decoded = g_strdup_printf ("%s.decoded", key);
  g_autoptr (SdclTensor) x = ref_upload (image);
  g_autoptr (SdclTensor) mean = NULL, logvar = NULL;
  sdcl_vae_encode (sdcl_model_vae (m), x, &mean, &logvar, &error);
  g_assert_no_error (error);
  g_autofree gchar *w1 = g_strdup_printf ("VAE encode mean, %s", layout);
  g_autofree gchar *w2 = g_strdup_printf ("VAE encode log-variance, %s", layout);
  g_autofree gchar *w3 = g_strdup_printf ("VAE decode, %s", layout);
  assert_matches (w1, mean, mean_n, TOL_REL, TOL_NMSE);
  assert_matches (w2, logvar, logvar_n, TOL_REL, TOL_NMSE);
  g_autoptr (SdclTensor) z = ref_upload (latent);
  g_autoptr (SdclTensor) y = sdcl_vae_decode (sdcl_model_vae (m), z, &error);
  g_assert_no_error (error);
  assert_matches (w3, y, decoded, TOL_REL, TOL_NMSE);
}

static void
test_single_file (void)
{
  g_autoptr (SdclModel) m = load ("tiny-sd.safetensors", NULL);
  const SdclModelInfo *info = sdcl_model_get_info (m);
  g_assert_cmpint (info->kind, ==, SDCL_MODEL_KIND_SD1);
  g_assert_cmpstr (info->layout, ==, "single file");
  g_assert_cmpstr (info->file_dtypes, ==, "F16");
  check_text_encoder (m, "single file");
  check_unet (m, "unet", "single file");
  check_unet (m, "unet2", "single file");
  check_vae (m, "vae", "single file");
}

static void
test_diffusers_folder (void)
{
  g_autoptr (SdclModel) m = load ("tiny-sd", NULL);
  const SdclModelInfo *info = sdcl_model_get_info (m);
  g_assert_cmpint (info->kind, ==, SDCL_MODEL_KIND_SD1);
  g_assert_cmpstr (info->layout, ==, "diffusers folder");
  check_text_encoder (m, "diffusers folder");
  check_unet (m, "unet", "diffusers folder");
  check_unet (m, "unet2", "diffusers folder");
  check_vae (m, "vae", "diffusers folder");
}

static void
test_inpaint_bf16 (void)
{
  g_autoptr (SdclModel) m = load ("tiny-sd-inpaint.safetensors", NULL);
  const SdclModelInfo *info = sdcl_model_get_info (m);
  g_assert_cmpint (info->kind, ==, SDCL_MODEL_KIND_SD1_INPAINT);
  g_assert_cmpuint (info->unet_in_channels, ==, 9);
  g_assert_cmpstr (info->file_dtypes, ==, "BF16");
  check_unet (m, "inpaint", "9-channel, BF16 file");
}

static void
test_replacement_vae (void)
{
  g_autoptr (SdclModel) m = load ("tiny-sd.safetensors", "tiny-vae.safetensors");
  const SdclModelInfo *info = sdcl_model_get_info (m);
  g_assert_nonnull (info->vae_path);
  g_assert_cmpstr (info->file_dtypes, ==, "F16, F32");
  check_vae (m, "vae2", "replacement VAE file, F32");
  /* the rest of the model is untouched */
  check_unet (m, "unet", "with a replacement VAE");
}

/* A prompt through the tokenizer, the chunker and the text encoder; with
 * emphasis, the hidden states are scaled per token and the chunk's mean
 * restored, as sd-webui does. */
static void
test_prompt_encoding (void)
{
  g_autoptr (SdclModel) m = load ("tiny-sd.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  gint batch;
  g_autofree gint32 *want_ids = ref_ids ("te.ids", &batch);
  const SdclSafetensorsEntry *e;
  g_autofree gfloat *hidden = ref_tensor ("te.hidden", &e);
  const gint W = e->shape[2];

  g_autoptr (SdclPromptChunks) plain = sdcl_prompt_chunks_new (
    "a photograph of an astronaut riding a horse", 1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (plain->n_chunks, ==, 1);
  g_assert_cmpmem (plain->ids, 77 * sizeof (gint32), want_ids, 77 * sizeof (gint32));
  g_autoptr (SdclTensor) h = sdcl_clip_encode_chunks (sdcl_model_clip (m), plain->ids,
                                                      plain->weights, 1, 1, &error);
  g_assert_no_error (error);
  g_autofree gfloat *got = sdcl_tensor_read_f32 (h, &error);
  sdcl_test_assert_close ("prompt -> text encoder", got, hidden, 77 * W, TOL_REL, TOL_NMSE);

  /* the same tokens with emphasis: (a photograph:1.3) ... [horse] */
  g_autoptr (SdclPromptChunks) weighted = sdcl_prompt_chunks_new (
    "(a photograph:1.3) of an astronaut riding a [horse]", 1, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (weighted->ids, 77 * sizeof (gint32), want_ids, 77 * sizeof (gint32));
  g_assert_cmpfloat_with_epsilon (weighted->weights[1], 1.3, 1e-6);
  g_assert_cmpfloat_with_epsilon (weighted->weights[8], 1 / 1.1, 1e-6);
  g_autoptr (SdclTensor) hw = sdcl_clip_encode_chunks (sdcl_model_clip (m), weighted->ids,
                                                       weighted->weights, 1, 1, &error);
  g_assert_no_error (error);
  g_autofree gfloat *gw = sdcl_tensor_read_f32 (hw, &error);
  g_assert_no_error (error);
  /* Emphasis as sd-webui: token t's hidden state times its weight, the
   * whole chunk times one factor r that restores the chunk's sum. Checked
   * against the engine's own unweighted states (compared with diffusers
   * above), not against the reference: the tiny model's final layer norm
   * makes the chunk's sum nearly cancel (-0.12 against a sum of |values|
   * of 530), so r = before / after magnifies any 1e-7 difference in the
   * states ~30000 times, whoever computes them. So: gw == r · w[t] · got
   * for one r, to float rounding, and sum(gw) == sum(got) to rounding of
   * the magnitudes summed. */
  gdouble aa = 0, ga = 0, a_max = 0, sum_got = 0, sum_gw = 0, sum_abs = 0;
  for (gint t = 0; t < 77; t++)
    for (gint i = 0; i < W; i++)
      {
        const gdouble a = got[t * W + i] * (gdouble) weighted->weights[t];
        aa += a * a;
        ga += gw[t * W + i] * a;
        a_max = MAX (a_max, fabs (a));
        sum_got += got[t * W + i];
        sum_gw += gw[t * W + i];
        sum_abs += fabs (got[t * W + i]);
      }
  const gdouble r = ga / aa;
  gdouble worst = 0;
  for (gint t = 0; t < 77; t++)
    for (gint i = 0; i < W; i++)
      worst = MAX (worst, fabs (gw[t * W + i] - r * got[t * W + i] * weighted->weights[t]));
  g_test_message ("emphasis: factor %.6f, worst deviation %.3g of %.3g, sum %.6g -> %.6g "
                  "(sum of |values| %.6g)", r, worst, a_max * r, sum_got, sum_gw, sum_abs);
  if (worst > 1e-6 * a_max * fabs (r))
    sdcl_test_fail ("emphasis: the weighted states are not one factor times weight x state "
                    "(worst deviation %.3g of %.3g)", worst, a_max * fabs (r));
  if (fabs (sum_gw - sum_got) > 1e-6 * sum_abs * MAX (1.0, fabs (r)))
    sdcl_test_fail ("emphasis: the chunk's sum went from %.6g to %.6g", sum_got, sum_gw);
}

/* ---- tiled VAE -------------------------------------------------------------------- */

static void
test_vae_tiled (void)
{
  g_autoptr (SdclModel) m = load ("tiny-sd.safetensors", NULL);
  SdclVae *vae = sdcl_model_vae (m);
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclTensor) z = ref_upload ("vae.big_latent");

  /* untiled decode against diffusers first: the tiles are judged against it */
  g_autoptr (SdclTensor) whole = sdcl_vae_decode (vae, z, &error);
  g_assert_no_error (error);
  assert_matches ("VAE decode 256x192 untiled", whole, "vae.big_decoded", TOL_REL, TOL_NMSE);

  /* Tiles see less context than the whole and normalise with their own
   * group-norm statistics, so they differ from it; with this random-weight
   * VAE the difference falls as tiles grow (NMSE for 12/16/20/24/28-pixel
   * latent tiles with overlap 4: 0.090/0.042/0.018/0.006/0.005). The bounds
   * below are about twice what was measured: a blending bug (a seam, a
   * tile in the wrong place) gives errors of the size of the image. */
  static const struct { gint tile, overlap; gdouble nmse; } cases[] = {
    { 24, 8, 0.01 },       /* 2 x 1 tiles over the 32 x 24 latent */
    { 16, 4, 0.08 },       /* 3 x 2 tiles */
  };
  g_autofree gfloat *a = sdcl_tensor_read_f32 (whole, &error);
  const gint64 n = sdcl_tensor_numel (whole);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (SdclTensor) tiled = sdcl_vae_decode_tiled (vae, z, cases[i].tile, cases[i].overlap,
                                                            &error);
      g_assert_no_error (error);
      g_assert_true (sdcl_tensor_same_shape (tiled, whole));
      g_autofree gfloat *b = sdcl_tensor_read_f32 (tiled, &error);
      SdclTestError e = sdcl_test_compare (b, a, n);
      /* the seam: the worst column-to-column step of the difference, against
       * the worst such step of the untiled image itself */
      const gint64 W = whole->ne[0], H = whole->ne[1];
      gdouble step_diff = 0, step_img = 0;
      for (gint64 c = 0; c < 3 * H; c++)
        for (gint64 x = 1; x < W; x++)
          {
            const gint64 p = c * W + x;
            step_diff = MAX (step_diff, fabs ((b[p] - a[p]) - (b[p - 1] - a[p - 1])));
            step_img = MAX (step_img, fabs (a[p] - a[p - 1]));
          }
      g_test_message ("tiled decode %d/%d vs untiled: max |diff| %.3f, NMSE %.4f; largest step "
                      "of the difference %.3f, of the image %.3f", cases[i].tile, cases[i].overlap,
                      e.max_abs, e.nmse, step_diff, step_img);
      g_assert_cmpfloat (e.nmse, <, cases[i].nmse);
      g_assert_cmpfloat (step_diff, <, 0.5 * step_img);
    }

  /* tiles that cover the input whole give the untiled result exactly */
  g_autoptr (SdclTensor) one = sdcl_vae_decode_tiled (vae, z, 32, 4, &error);
  g_assert_no_error (error);
  g_autofree gfloat *c = sdcl_tensor_read_f32 (one, &error);
  g_assert_cmpint (sdcl_tensor_numel (one), ==, n);
  g_assert_cmpmem (c, n * sizeof (gfloat), a, n * sizeof (gfloat));

  /* tiled encode of the decoded image, against the untiled encode */
  g_autoptr (SdclTensor) mean = NULL, mean_tiled = NULL;
  sdcl_vae_encode (vae, whole, &mean, NULL, &error);
  g_assert_no_error (error);
  sdcl_vae_encode_tiled (vae, whole, 16, 4, &mean_tiled, NULL, &error);
  g_assert_no_error (error);
  g_autofree gfloat *ma = sdcl_tensor_read_f32 (mean, &error);
  g_autofree gfloat *mb = sdcl_tensor_read_f32 (mean_tiled, &error);
  SdclTestError ee = sdcl_test_compare (mb, ma, sdcl_tensor_numel (mean));
  g_test_message ("tiled encode 16/4 vs untiled: max |diff| %.4f, NMSE %.4f", ee.max_abs, ee.nmse);
  g_assert_cmpfloat (ee.nmse, <, 0.08);
}

/* ---- names and configs ------------------------------------------------------------ */

static void
test_name_table (void)
{
  /* SD 1.5's architecture: the pairs diffusers' conversion script makes */
  SdclUnetConfig u = { .n_levels = 4, .layers_per_block = 2,
                       .attention = { TRUE, TRUE, TRUE, FALSE } };
  SdclVaeConfig v = { .n_levels = 4, .layers_per_block = 2 };
  g_autoptr (SdclNameTable) t = sdcl_name_table_new (&u, &v, "first_stage_model.");
  static const gchar *pairs[][2] = {
    { "model.diffusion_model.time_embed.0.weight", "unet.time_embedding.linear_1.weight" },
    { "model.diffusion_model.input_blocks.0.0.bias", "unet.conv_in.bias" },
    { "model.diffusion_model.input_blocks.1.0.in_layers.0.weight", "unet.down_blocks.0.resnets.0.norm1.weight" },
    { "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight",
      "unet.down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k.weight" },
    { "model.diffusion_model.input_blocks.3.0.op.weight", "unet.down_blocks.0.downsamplers.0.conv.weight" },
    { "model.diffusion_model.input_blocks.4.0.skip_connection.weight",
      "unet.down_blocks.1.resnets.0.conv_shortcut.weight" },
    { "model.diffusion_model.input_blocks.11.0.emb_layers.1.bias", "unet.down_blocks.3.resnets.1.time_emb_proj.bias" },
    { "model.diffusion_model.middle_block.1.proj_out.weight", "unet.mid_block.attentions.0.proj_out.weight" },
    { "model.diffusion_model.middle_block.2.out_layers.3.weight", "unet.mid_block.resnets.1.conv2.weight" },
    { "model.diffusion_model.output_blocks.2.1.conv.weight", "unet.up_blocks.0.upsamplers.0.conv.weight" },
    { "model.diffusion_model.output_blocks.3.1.norm.weight", "unet.up_blocks.1.attentions.0.norm.weight" },
    { "model.diffusion_model.output_blocks.5.2.conv.bias", "unet.up_blocks.1.upsamplers.0.conv.bias" },
    { "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.ff.net.2.weight",
      "unet.up_blocks.3.attentions.2.transformer_blocks.0.ff.net.2.weight" },
    { "model.diffusion_model.out.2.weight", "unet.conv_out.weight" },
    { "first_stage_model.encoder.down.1.downsample.conv.weight", "vae.encoder.down_blocks.1.downsamplers.0.conv.weight" },
    { "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight", "vae.encoder.down_blocks.1.resnets.0.conv_shortcut.weight" },
    { "first_stage_model.encoder.mid.attn_1.q.weight", "vae.encoder.mid_block.attentions.0.to_q.weight" },
    { "first_stage_model.decoder.mid.attn_1.proj_out.bias", "vae.decoder.mid_block.attentions.0.to_out.0.bias" },
    { "first_stage_model.decoder.mid.attn_1.norm.weight", "vae.decoder.mid_block.attentions.0.group_norm.weight" },
    { "first_stage_model.decoder.up.3.block.2.conv1.weight", "vae.decoder.up_blocks.0.resnets.2.conv1.weight" },
    { "first_stage_model.decoder.up.0.block.0.norm2.bias", "vae.decoder.up_blocks.3.resnets.0.norm2.bias" },
    { "first_stage_model.decoder.up.1.upsample.conv.weight", "vae.decoder.up_blocks.2.upsamplers.0.conv.weight" },
    { "first_stage_model.decoder.norm_out.weight", "vae.decoder.conv_norm_out.weight" },
    { "first_stage_model.post_quant_conv.weight", "vae.post_quant_conv.weight" },
    { "cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.bias",
      "text_encoder.text_model.encoder.layers.11.mlp.fc2.bias" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (pairs); i++)
    {
      g_autofree gchar *e = sdcl_name_from_original (t, pairs[i][0]);
      g_autofree gchar *o = sdcl_name_to_original (t, pairs[i][1]);
      g_assert_cmpstr (e, ==, pairs[i][1]);
      g_assert_cmpstr (o, ==, pairs[i][0]);
    }
  /* not the engine's: ignored */
  static const gchar *ignored[] = {
    "model_ema.diffusion_modelinput_blocks00weight", "model_ema.num_updates",
    "cond_stage_model.transformer.text_model.embeddings.position_ids",
    "model.diffusion_model.input_blocks.1.0.in_layers.1.weight", "alphas_cumprod",
    "first_stage_model.loss.logvar",
  };
  for (guint i = 0; i < G_N_ELEMENTS (ignored); i++)
    {
      g_autofree gchar *e = sdcl_name_from_original (t, ignored[i]);
      g_assert_null (e);
    }

  /* every tensor of the tiny single file maps there and back */
  g_autofree gchar *path = fixture ("tiny-sd.safetensors");
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclSafetensors) st = sdcl_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_autoptr (JsonParser) p = json_parser_new ();
  SdclUnetConfig tu;
  SdclVaeConfig tv;
  json_parser_load_from_data (p, sdcl_safetensors_metadata (st, "sdcl.unet_config"), -1, &error);
  g_assert_no_error (error);
  sdcl_unet_config_from_json (json_node_get_object (json_parser_get_root (p)), &tu, &error);
  g_assert_no_error (error);
  json_parser_load_from_data (p, sdcl_safetensors_metadata (st, "sdcl.vae_config"), -1, &error);
  g_assert_no_error (error);
  sdcl_vae_config_from_json (json_node_get_object (json_parser_get_root (p)), &tv, &error);
  g_assert_no_error (error);
  g_autoptr (SdclNameTable) tt = sdcl_name_table_new (&tu, &tv, "first_stage_model.");
  g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < sdcl_safetensors_n_tensors (st); i++)
    {
      const gchar *name = sdcl_safetensors_nth (st, i)->name;
      g_autofree gchar *e = sdcl_name_from_original (tt, name);
      if (!e)
        sdcl_test_fail ("%s maps to no engine name", name);
      g_assert_false (g_hash_table_contains (seen, e));
      g_autofree gchar *back = sdcl_name_to_original (tt, e);
      g_assert_cmpstr (back, ==, name);
      g_hash_table_add (seen, g_steal_pointer (&e));
    }
}

/* The same file without architecture metadata for the UNet and VAE: both
 * configs come from the shapes and the outputs stay the same. */
static void
test_config_from_shapes (void)
{
  g_autofree gchar *path = fixture ("tiny-sd.safetensors");
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclSafetensors) st = sdcl_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_autoptr (SdclSafetensorsWriter) w = sdcl_safetensors_writer_new ();
  for (guint i = 0; i < sdcl_safetensors_n_tensors (st); i++)
    {
      const SdclSafetensorsEntry *e = sdcl_safetensors_nth (st, i);
      sdcl_safetensors_writer_add (w, e->name, e->dtype, e->n_dims, e->shape, e->data, e->n_bytes,
                                   &error);
      g_assert_no_error (error);
    }
  sdcl_safetensors_writer_set_metadata (w, "sdcl.text_encoder_config",
                                        sdcl_safetensors_metadata (st, "sdcl.text_encoder_config"));
  g_autofree gchar *dir = g_dir_make_tmp ("sdcl-models-XXXXXX", &error);
  g_assert_no_error (error);
  g_autofree gchar *out = g_build_filename (dir, "no-arch.safetensors", NULL);
  sdcl_safetensors_writer_save (w, out, &error);
  g_assert_no_error (error);

  g_autoptr (SdclModel) m = sdcl_model_load (engine, out, NULL, &error);
  g_assert_no_error (error);
  /* the same architecture as the metadata describes */
  const SdclUnetConfig *u = sdcl_model_unet_config (m);
  g_autoptr (JsonParser) p = json_parser_new ();
  json_parser_load_from_data (p, sdcl_safetensors_metadata (st, "sdcl.unet_config"), -1, &error);
  g_assert_no_error (error);
  SdclUnetConfig want;
  sdcl_unet_config_from_json (json_node_get_object (json_parser_get_root (p)), &want, &error);
  g_assert_no_error (error);
  g_assert_cmpint (u->n_levels, ==, want.n_levels);
  g_assert_cmpint (u->layers_per_block, ==, want.layers_per_block);
  g_assert_cmpint (u->in_channels, ==, want.in_channels);
  g_assert_cmpint (u->out_channels, ==, want.out_channels);
  g_assert_cmpint (u->context_dim, ==, want.context_dim);
  g_assert_cmpmem (u->channels, sizeof u->channels, want.channels, sizeof want.channels);
  g_assert_cmpmem (u->attention, sizeof u->attention, want.attention, sizeof want.attention);
  check_unet (m, "unet", "architecture from shapes");
  check_vae (m, "vae", "architecture from shapes");
  g_unlink (out);
  g_rmdir (dir);
}

static void
test_info (void)
{
  g_autofree gchar *path = fixture ("tiny-sd.safetensors");
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclModelInfo) info = sdcl_model_inspect (path, NULL, &error);
  g_assert_no_error (error);
  /* every parameter the parts use, counted from the file */
  g_autoptr (SdclSafetensors) st = sdcl_safetensors_open (path, &error);
  guint64 unet = 0, vae = 0, text = 0;
  for (guint i = 0; i < sdcl_safetensors_n_tensors (st); i++)
    {
      const SdclSafetensorsEntry *e = sdcl_safetensors_nth (st, i);
      if (g_str_has_prefix (e->name, "model.diffusion_model."))
        unet += e->numel;
      else if (g_str_has_prefix (e->name, "first_stage_model."))
        vae += e->numel;
      else if (!g_str_has_suffix (e->name, "position_ids"))
        text += e->numel;
    }
  g_assert_cmpuint (info->unet_params, ==, unet);
  g_assert_cmpuint (info->vae_params, ==, vae);
  g_assert_cmpuint (info->text_encoder_params, ==, text);
  g_assert_cmpuint (info->native_size, ==, 64);
  g_assert_cmpuint (info->latent_factor, ==, 8);
  g_assert_cmpuint (info->weight_bytes, >=, 2 * (unet + vae + text) * 9 / 10);
  /* one part at a time: at least the UNet's weights, less than all of it */
  g_assert_cmpuint (info->part_peak_bytes, >=, 2 * unet);
  g_assert_cmpuint (info->part_peak_bytes, <, info->weight_bytes + info->work_bytes);
}

/* ---- files that must be refused ------------------------------------------------- */

static void
expect_refusal (const gchar *name, const gchar *vae, GQuark domain, gint code, const gchar *needle)
{
  g_autofree gchar *path = fixture (name);
  g_autofree gchar *vae_path = vae ? fixture (vae) : NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclModelInfo) info = sdcl_model_inspect (path, vae_path, &error);
  g_assert_null (info);
  g_assert_error (error, domain, code);
  g_test_message ("%s: %s", name, error->message);
  if (!strstr (error->message, needle))
    sdcl_test_fail ("the message for %s does not mention \"%s\": %s", name, needle, error->message);
  /* loading refuses the same way, and before touching the device */
  g_clear_error (&error);
  const guint64 before = sdcl_engine_memory_in_use (engine);
  g_autoptr (SdclModel) m = sdcl_model_load (engine, path, vae_path, &error);
  g_assert_null (m);
  g_assert_error (error, domain, code);
  g_assert_cmpuint (sdcl_engine_memory_in_use (engine), ==, before);
}

static void
test_refuse_ckpt (void)
{
  expect_refusal ("not-a-model.ckpt", NULL, SDCL_SAFETENSORS_ERROR,
                  SDCL_SAFETENSORS_ERROR_UNSUPPORTED, "safetensors");
  g_autofree gchar *path = fixture ("not-a-model.ckpt");
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclModelInfo) info = sdcl_model_inspect (path, NULL, &error);
  g_assert_nonnull (strstr (error->message, "weights_only=True"));
}

/* tiny-sd.safetensors rewritten with one tensor changed by `edit` (which
 * may drop it: returns FALSE), into a temporary file; returns its path. */
typedef gboolean (*EditFunc) (const SdclSafetensorsEntry *e, gint64 *shape, gsize *n_bytes);

static gchar *
edited_copy (const gchar *target, EditFunc edit, gchar **dir_out)
{
  g_autofree gchar *path = fixture ("tiny-sd.safetensors");
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclSafetensors) st = sdcl_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_autoptr (SdclSafetensorsWriter) w = sdcl_safetensors_writer_new ();
  for (guint i = 0; i < sdcl_safetensors_n_tensors (st); i++)
    {
      const SdclSafetensorsEntry *e = sdcl_safetensors_nth (st, i);
      gint64 shape[SDCL_SAFETENSORS_MAX_DIMS];
      memcpy (shape, e->shape, sizeof shape);
      gsize n_bytes = e->n_bytes;
      if (g_str_equal (e->name, target) && !edit (e, shape, &n_bytes))
        continue;
      sdcl_safetensors_writer_add (w, e->name, e->dtype, e->n_dims, shape, e->data, n_bytes, &error);
      g_assert_no_error (error);
    }
  GHashTable *meta = sdcl_safetensors_metadata_table (st);
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init (&it, meta);
  while (g_hash_table_iter_next (&it, &k, &v))
    sdcl_safetensors_writer_set_metadata (w, k, v);
  *dir_out = g_dir_make_tmp ("sdcl-models-XXXXXX", &error);
  g_assert_no_error (error);
  gchar *out = g_build_filename (*dir_out, "edited.safetensors", NULL);
  sdcl_safetensors_writer_save (w, out, &error);
  g_assert_no_error (error);
  return out;
}

static gboolean
drop (const SdclSafetensorsEntry *e, gint64 *shape, gsize *n_bytes)
{
  return FALSE;
}

/* 8 input channels short: the bytes are the first ones of the original */
static gboolean
narrow (const SdclSafetensorsEntry *e, gint64 *shape, gsize *n_bytes)
{
  *n_bytes = *n_bytes / shape[1] * (shape[1] - 8);
  shape[1] -= 8;
  return TRUE;
}

static void
expect_edit_refused (const gchar *target, EditFunc edit, gint code, const gchar *needle)
{
  g_autofree gchar *dir = NULL;
  g_autofree gchar *path = edited_copy (target, edit, &dir);
  g_autoptr (GError) error = NULL;
  const guint64 before = sdcl_engine_memory_in_use (engine);
  g_autoptr (SdclModel) m = sdcl_model_load (engine, path, NULL, &error);
  g_assert_null (m);
  g_assert_error (error, SDCL_MODEL_ERROR, code);
  g_assert_cmpuint (sdcl_engine_memory_in_use (engine), ==, before);
  g_test_message ("%s", error->message);
  if (!strstr (error->message, needle))
    sdcl_test_fail ("the message does not mention \"%s\": %s", needle, error->message);
  g_unlink (path);
  g_rmdir (dir);
}

static void
test_refuse_missing (void)
{
  expect_edit_refused ("model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_v.weight",
                       drop, SDCL_MODEL_ERROR_MISSING,
                       "missing tensor 'model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_v.weight' "
                       "(unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v.weight)");
}

static void
test_refuse_bad_shape (void)
{
  expect_edit_refused ("model.diffusion_model.output_blocks.4.0.in_layers.2.weight", narrow,
                       SDCL_MODEL_ERROR_SHAPE,
                       "tensor 'model.diffusion_model.output_blocks.4.0.in_layers.2.weight' has shape "
                       "[32, 56, 3, 3] F16 where the architecture needs [32, 64, 3, 3]");
}

static void
test_refuse_sdxl (void)
{
  expect_refusal ("fake-sdxl.safetensors", NULL, SDCL_MODEL_ERROR, SDCL_MODEL_ERROR_UNSUPPORTED,
                  "SDXL");
}

/* SD 2.x checkpoints are told apart by their OpenCLIP text encoder: a
 * file with just one of its tensors (a real one is 100 MB) */
static void
test_refuse_sd2 (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SdclSafetensorsWriter) w = sdcl_safetensors_writer_new ();
  const gint64 emb[2] = { 16, 1024 }, conv[4] = { 320, 4, 3, 3 };
  g_autofree guint16 *zeros = g_new0 (guint16, 16 * 1024);
  sdcl_safetensors_writer_add (w, "cond_stage_model.model.token_embedding.weight", SDCL_ST_F16, 2,
                               emb, zeros, 16 * 1024 * 2, &error);
  g_assert_no_error (error);
  sdcl_safetensors_writer_add (w, "model.diffusion_model.input_blocks.0.0.weight", SDCL_ST_F16, 4,
                               conv, zeros, 320 * 4 * 9 * 2, &error);
  g_assert_no_error (error);
  g_autofree gchar *dir = g_dir_make_tmp ("sdcl-models-XXXXXX", &error);
  g_autofree gchar *path = g_build_filename (dir, "sd2.safetensors", NULL);
  sdcl_safetensors_writer_save (w, path, &error);
  g_assert_no_error (error);
  g_autoptr (SdclModelInfo) info = sdcl_model_inspect (path, NULL, &error);
  g_assert_null (info);
  g_assert_error (error, SDCL_MODEL_ERROR, SDCL_MODEL_ERROR_UNSUPPORTED);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "SD 2.x"));
  g_unlink (path);
  g_rmdir (dir);
}

static void
test_refuse_vae_as_model (void)
{
  expect_refusal ("tiny-vae.safetensors", NULL, SDCL_MODEL_ERROR, SDCL_MODEL_ERROR_UNSUPPORTED,
                  "VAE on its own");
}

static void
test_refuse_absent (void)
{
  expect_refusal ("no-such-model.safetensors", NULL, SDCL_MODEL_ERROR, SDCL_MODEL_ERROR_NOT_FOUND,
                  "no such file");
  expect_refusal ("tiny-sd.safetensors", "no-such-vae.safetensors", SDCL_MODEL_ERROR,
                  SDCL_MODEL_ERROR_NOT_FOUND, "no such VAE");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_autoptr (GError) error = NULL;
  engine = sdcl_engine_new (NULL, &error);
  g_assert_no_error (error);
  g_autofree gchar *ref = fixture ("tiny-sd-ref.safetensors");
  reference = sdcl_safetensors_open (ref, &error);
  g_assert_no_error (error);

  g_test_add_func ("/models/single-file", test_single_file);
  g_test_add_func ("/models/diffusers-folder", test_diffusers_folder);
  g_test_add_func ("/models/inpaint-9-channel-bf16", test_inpaint_bf16);
  g_test_add_func ("/models/replacement-vae-f32", test_replacement_vae);
  g_test_add_func ("/models/prompt-encoding", test_prompt_encoding);
  g_test_add_func ("/models/vae-tiled", test_vae_tiled);
  g_test_add_func ("/models/name-table", test_name_table);
  g_test_add_func ("/models/config-from-shapes", test_config_from_shapes);
  g_test_add_func ("/models/info", test_info);
  g_test_add_func ("/models/refuse/ckpt", test_refuse_ckpt);
  g_test_add_func ("/models/refuse/missing-tensor", test_refuse_missing);
  g_test_add_func ("/models/refuse/wrong-shape", test_refuse_bad_shape);
  g_test_add_func ("/models/refuse/sdxl", test_refuse_sdxl);
  g_test_add_func ("/models/refuse/sd2", test_refuse_sd2);
  g_test_add_func ("/models/refuse/vae-as-model", test_refuse_vae_as_model);
  g_test_add_func ("/models/refuse/absent", test_refuse_absent);
  const int rc = g_test_run ();
  sdcl_safetensors_free (reference);
  sdcl_engine_free (engine);
  return rc;
}
