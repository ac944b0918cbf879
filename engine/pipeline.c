/* pipeline.c — sdcl_generate(): txt2img, img2img and inpainting.
 *
 * The order of work and of random draws follows diffusers'
 * StableDiffusionPipeline, StableDiffusionImg2ImgPipeline and
 * StableDiffusionInpaintPipeline, so a seed gives what they give:
 *
 *   txt2img   noise
 *   img2img   VAE sample of the image, noise
 *   inpaint   [VAE sample of the image: 4-channel models, or strength < 1],
 *             noise, VAE sample of the masked image
 *
 * then whatever the sampler draws per step. Each image of a batch has its
 * own generator, seeded seed + i. Latents live on the host between steps
 * (a few thousand floats); the UNet runs the unconditional and the
 * conditional half as one batch of two. txt2img asked for more than twice
 * the model's native size draws at the native size and enlarges the image
 * (sdcl_image_upscale); no second diffusion pass.
 */
#include <math.h>
#include <string.h>
#include <gio/gio.h>

#include "model.h"
#include "pipeline.h"
#include "prompt.h"
#include "rng.h"
#include "sampler.h"
#include "tensor.h"

G_DEFINE_QUARK (sdcl-request-error-quark, sdcl_request_error)

#define MAX_SIDE   8192
#define MAX_BATCH  1000

void
sdcl_request_init (SdclRequest *r)
{
  memset (r, 0, sizeof *r);
  r->mode = SDCL_MODE_TXT2IMG;
  r->prompt = "";
  r->steps = 20;
  r->cfg_scale = 7.5;
  r->sampler = SDCL_SAMPLER_EULER_A;
  r->schedule = SDCL_SCHEDULE_DEFAULT;
  r->seed = -1;
  r->batch_count = 1;
  r->clip_skip = 1;
  r->strength = 0.75;
}

void
sdcl_image_free (SdclImage *image)
{
  if (!image)
    return;
  g_free (image->pixels);
  g_free (image->parameters);
  g_free (image);
}

void
sdcl_trace_clear (SdclTrace *t)
{
  if (t->step_latents)
    g_array_unref (t->step_latents);
  g_free (t->noise);
  g_free (t->final_latent);
  g_free (t->image);
  memset (t, 0, sizeof *t);
}

/* ---- one request ---------------------------------------------------------------------- */

typedef struct
{
  SdclModel          *model;
  const SdclRequest  *req;
  SdclEngine         *engine;
  SdclUnet           *unet;
  SdclUnetText       *text;      /* context projected for the UNet's cross-attention */
  SdclVae            *vae;
  const SdclVaeConfig *vc;
  gint                unet_in;
  SdclScheduleConfig  sched;
  guint               W, H;        /* image, as drawn */
  guint               out_W, out_H; /* image returned: W x H, or enlarged from it */
  guint               w, h, C;     /* latent */
  gsize               n;           /* latent floats of one image */
  gboolean            guided;      /* classifier-free guidance: batch of 2 */
  gboolean            blend;       /* inpainting with a 4-channel UNet: latents blended */
  SdclTensor         *context;     /* [width, S, 1 or 2]: unconditional first */
  gfloat             *image;       /* init image [3][H][W] in [-1, 1] */
  gfloat             *mask;        /* [H][W] in [0, 1], as given (paste-back) */
  gfloat             *mask_latent; /* [h][w] 0 or 1: the mask binarised, nearest-resized */
  gfloat             *masked_mean; /* 9-channel models without a mask: latent of a grey image */
  SdclProgressFunc    progress;
  gpointer            user_data;
  gint64              t0;
  SdclTrace          *trace;
} Run;

static void
run_clear (Run *r)
{
  g_clear_pointer (&r->context, sdcl_tensor_free);
  g_clear_pointer (&r->image, g_free);
  g_clear_pointer (&r->mask, g_free);
  g_clear_pointer (&r->mask_latent, g_free);
  g_clear_pointer (&r->masked_mean, g_free);
}

static gboolean
invalid (GError **error, gint code, const gchar *format, ...) G_GNUC_PRINTF (3, 4);

static gboolean
invalid (GError **error, gint code, const gchar *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree gchar *msg = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error_literal (error, SDCL_REQUEST_ERROR, code, msg);
  return FALSE;
}

/* txt2img over twice the native size is drawn at it (see sdcl.h): the
 * aspect kept, the longer side at the native size, both sides multiples
 * of the granularity the size check asks for, at least 16. */
static gboolean
draw_size (const SdclModelInfo *info, SdclMode mode, guint W, guint H, guint *dw, guint *dh)
{
  const guint native = info->native_size, g = MAX (8, info->latent_factor);
  const guint least = (16 + g - 1) / g * g;
  *dw = W;
  *dh = H;
  if (mode != SDCL_MODE_TXT2IMG || native == 0 || (W <= 2 * native && H <= 2 * native))
    return FALSE;
  const gdouble scale = (gdouble) native / MAX (W, H);
  *dw = MAX (least, (guint) lround (W * scale / g) * g);
  *dh = MAX (least, (guint) lround (H * scale / g) * g);
  return TRUE;
}

gboolean
sdcl_generate_draw_size (SdclModel *model, const SdclRequest *request, guint *width,
                         guint *height)
{
  g_return_val_if_fail (model && request && width && height, FALSE);
  const SdclModelInfo *info = sdcl_model_get_info (model);
  const gboolean from_image = request->mode != SDCL_MODE_TXT2IMG;
  const guint W = request->width ? request->width : from_image ? request->init_width
                                                               : info->native_size;
  const guint H = request->height ? request->height : from_image ? request->init_height
                                                                 : info->native_size;
  return draw_size (info, request->mode, W, H, width, height);
}

static gboolean
check_request (Run *r, GError **error)
{
  const SdclRequest *q = r->req;
  const SdclModelInfo *info = sdcl_model_get_info (r->model);
  const gboolean from_image = q->mode == SDCL_MODE_IMG2IMG || q->mode == SDCL_MODE_INPAINT;

  if (q->mode != SDCL_MODE_TXT2IMG && !from_image)
    return invalid (error, SDCL_REQUEST_ERROR_INVALID, "unknown mode %d", q->mode);
  if (q->prompt && !g_utf8_validate (q->prompt, -1, NULL))
    return invalid (error, SDCL_REQUEST_ERROR_INVALID, "the prompt is not valid UTF-8");
  if (!(q->cfg_scale >= 0 && q->cfg_scale <= 100))
    return invalid (error, SDCL_REQUEST_ERROR_INVALID,
                    "the CFG scale must be between 0 and 100, not %g", q->cfg_scale);
  if (q->batch_count < 1 || q->batch_count > MAX_BATCH)
    return invalid (error, SDCL_REQUEST_ERROR_INVALID,
                    "the batch count must be between 1 and %d, not %u", MAX_BATCH, q->batch_count);
  if (q->seed < -1 || q->seed > G_MAXUINT32)
    return invalid (error, SDCL_REQUEST_ERROR_INVALID,
                    "the seed must be between 0 and %u, or -1 for a random one, not %" G_GINT64_FORMAT,
                    G_MAXUINT32, q->seed);
  const guint layers = sdcl_model_clip_config (r->model)->layers;
  if (q->clip_skip > layers)
    return invalid (error, SDCL_REQUEST_ERROR_INVALID,
                    "clip skip %u is more than this text encoder's %u layers allow", q->clip_skip,
                    layers);
  if (from_image && !(q->strength >= 0 && q->strength <= 1))
    return invalid (error, SDCL_REQUEST_ERROR_INVALID,
                    "the strength must be between 0 and 1, not %g", q->strength);
  if (from_image && (!q->init_image || q->init_width == 0 || q->init_height == 0))
    return invalid (error, SDCL_REQUEST_ERROR_INVALID, "%s needs an init image",
                    q->mode == SDCL_MODE_IMG2IMG ? "img2img" : "inpainting");
  if (q->mode == SDCL_MODE_INPAINT && !q->mask)
    return invalid (error, SDCL_REQUEST_ERROR_INVALID, "inpainting needs a mask");

  r->W = q->width ? q->width : from_image ? q->init_width : info->native_size;
  r->H = q->height ? q->height : from_image ? q->init_height : info->native_size;
  if (r->W % 8 || r->H % 8 || r->W % info->latent_factor || r->H % info->latent_factor
      || r->W < 16 || r->H < 16 || r->W > MAX_SIDE || r->H > MAX_SIDE)
    return invalid (error, SDCL_REQUEST_ERROR_SIZE,
                    "the size %ux%u cannot be made: width and height must be multiples of %u "
                    "between 16 and %d", r->W, r->H, MAX (8, info->latent_factor), MAX_SIDE);
  if (from_image && (r->W != q->init_width || r->H != q->init_height))
    return invalid (error, SDCL_REQUEST_ERROR_SIZE,
                    "the init image is %ux%u but the output is %ux%u: scale the image first",
                    q->init_width, q->init_height, r->W, r->H);
  r->out_W = r->W;
  r->out_H = r->H;
  draw_size (info, q->mode, r->out_W, r->out_H, &r->W, &r->H);
  if (q->mode == SDCL_MODE_INPAINT)
    {
      gboolean any = FALSE;
      for (gsize i = 0; i < (gsize) r->W * r->H && !any; i++)
        any = q->mask[i] != 0;
      if (!any)
        return invalid (error, SDCL_REQUEST_ERROR_EMPTY_MASK,
                        "the mask is empty: select the region to repaint");
    }
  return TRUE;
}

/* ---- prompts ------------------------------------------------------------------------------ */

static SdclTensor *
encode (Run *r, const SdclPromptChunks *chunks, GError **error)
{
  return sdcl_clip_encode_chunks (sdcl_model_clip (r->model), chunks->ids, chunks->weights,
                                  chunks->n_chunks, MAX (1, r->req->clip_skip), error);
}

/* The prompt and, with guidance, the negative prompt padded to the same
 * number of chunks, unconditional first. */
static gboolean
encode_prompts (Run *r, GError **error)
{
  const gchar *prompt = r->req->prompt ? r->req->prompt : "";
  const gchar *negative = r->req->negative_prompt ? r->req->negative_prompt : "";
  g_autoptr (SdclPromptChunks) cond = sdcl_prompt_chunks_new (prompt, 1, error);
  if (!cond)
    return FALSE;
  g_autoptr (SdclTensor) c = NULL;
  if (!r->guided)
    {
      r->context = encode (r, cond, error);
      return r->context != NULL;
    }
  g_autoptr (SdclPromptChunks) uncond = sdcl_prompt_chunks_new (negative, cond->n_chunks, error);
  if (!uncond)
    return FALSE;
  if (uncond->n_chunks > cond->n_chunks)
    {
      sdcl_prompt_chunks_free (cond);
      cond = sdcl_prompt_chunks_new (prompt, uncond->n_chunks, error);
      if (!cond)
        return FALSE;
    }
  c = encode (r, cond, error);
  g_autoptr (SdclTensor) u = c ? encode (r, uncond, error) : NULL;
  if (!u)
    return FALSE;
  const gsize half = sdcl_tensor_numel (c);
  g_autofree gfloat *both = g_new (gfloat, 2 * half);
  if (!sdcl_tensor_read (u, both, error) || !sdcl_tensor_read (c, both + half, error))
    return FALSE;
  r->context = sdcl_tensor_new_4d (r->engine, SDCL_DTYPE_F32, c->ne[0], c->ne[1], 2, 1, error);
  return r->context && sdcl_tensor_write_f32 (r->context, both, error);
}

/* ---- images and latents ---------------------------------------------------------------- */

/* 8-bit RGB pixels -> [3][H][W] in [-1, 1], as diffusers' image processor */
static gfloat *
pixels_to_planes (const guint8 *rgb, guint W, guint H)
{
  const gsize plane = (gsize) W * H;
  gfloat *x = g_new (gfloat, 3 * plane);
  for (gsize i = 0; i < plane; i++)
    for (gint c = 0; c < 3; c++)
      x[c * plane + i] = 2.0f * (rgb[3 * i + c] / 255.0f) - 1.0f;
  return x;
}

/* VAE: image [3][H][W] -> latent sample, scaled: mean + std * noise from
 * the generator (diffusers' latent_dist.sample), times the scaling
 * factor. Large images go through tiles and use the mean; the noise is
 * drawn all the same, so later draws stay where they were. */
static gfloat *
encode_sample (Run *r, const gfloat *image, SdclRng *rng, GError **error)
{
  g_autoptr (SdclTensor) x = sdcl_tensor_new_4d (r->engine, SDCL_DTYPE_F32, r->W, r->H, 3, 1, error);
  if (!x || !sdcl_tensor_write_f32 (x, image, error))
    return NULL;
  g_autoptr (SdclTensor) mean = NULL;
  g_autoptr (SdclTensor) logvar = NULL;
  if (!sdcl_vae_encode_tiled (r->vae, x, 0, 0, &mean, &logvar, error))
    return NULL;
  g_autofree gfloat *m = sdcl_tensor_read_f32 (mean, error);
  g_autofree gfloat *lv = logvar ? sdcl_tensor_read_f32 (logvar, error) : NULL;
  if (!m || (logvar && !lv))
    return NULL;
  g_autofree gfloat *eps = g_new (gfloat, r->n);
  if (rng)
    sdcl_rng_randn (rng, eps, r->n);
  const gfloat sf = r->vc->scaling_factor;
  for (gsize i = 0; i < r->n; i++)
    {
      gfloat z = m[i];
      if (lv && rng)
        z = m[i] + expf (0.5f * CLAMP (lv[i], -30.0f, 20.0f)) * eps[i];
      m[i] = sf * z;
    }
  return g_steal_pointer (&m);
}

/* The mask as the model sees it: binarised at one half, then resized to
 * the latent by nearest neighbours (diffusers' mask processor and
 * interpolate), which pick each block's top-left pixel. */
static gfloat *
latent_mask (const gfloat *mask, guint W, guint H, guint w, guint h)
{
  gfloat *m = g_new (gfloat, (gsize) w * h);
  for (guint y = 0; y < h; y++)
    for (guint x = 0; x < w; x++)
      {
        const guint sy = MIN ((guint) floorf (y * ((gfloat) H / h)), H - 1);
        const guint sx = MIN ((guint) floorf (x * ((gfloat) W / w)), W - 1);
        m[(gsize) y * w + x] = mask[(gsize) sy * W + sx] >= 0.5f ? 1.0f : 0.0f;
      }
  return m;
}

static gboolean
prepare_images (Run *r, GError **error)
{
  const SdclRequest *q = r->req;
  if (q->mode != SDCL_MODE_TXT2IMG)
    r->image = pixels_to_planes (q->init_image, r->W, r->H);
  const gsize plane = (gsize) r->W * r->H;
  if (q->mode == SDCL_MODE_INPAINT)
    {
      r->mask = g_new (gfloat, plane);
      for (gsize i = 0; i < plane; i++)
        r->mask[i] = q->mask[i] / 255.0f;
      r->mask_latent = latent_mask (r->mask, r->W, r->H, r->w, r->h);
    }
  else if (r->unet_in == 9)
    {
      /* an inpainting model asked for a whole picture: all mask, and the
         masked image is all grey (0 in [-1, 1]) */
      r->mask_latent = g_new (gfloat, (gsize) r->w * r->h);
      for (gsize i = 0; i < (gsize) r->w * r->h; i++)
        r->mask_latent[i] = 1.0f;
      g_autofree gfloat *grey = g_new0 (gfloat, 3 * plane);
      r->masked_mean = encode_sample (r, grey, NULL, error);
      if (!r->masked_mean)
        return FALSE;
    }
  return TRUE;
}

/* ---- preview ------------------------------------------------------------------------------ */

/* Latent -> RGB by a linear map fitted for SD 1.x latents (the estimate
 * sd-webui and ComfyUI use), sampled bilinearly to the preview size. */
static const gfloat latent_rgb[4][3] = {
  { 0.3512f, 0.2297f, 0.3227f },
  { 0.3250f, 0.4974f, 0.2350f },
  { -0.2829f, 0.1762f, 0.2721f },
  { -0.2120f, -0.2616f, -0.7177f },
};

static guint8 *
make_preview (const Run *r, const gfloat *x0, guint *pw, guint *ph)
{
  const guint size = MIN (r->req->preview_size, MAX (r->W, r->H));
  if (size == 0 || r->C != 4)
    return NULL;
  *pw = MAX (1, (guint) ((gdouble) r->W * size / MAX (r->W, r->H) + 0.5));
  *ph = MAX (1, (guint) ((gdouble) r->H * size / MAX (r->W, r->H) + 0.5));
  const gsize plane = (gsize) r->w * r->h;
  g_autofree gfloat *rgb = g_new0 (gfloat, 3 * plane);
  for (gsize i = 0; i < plane; i++)
    for (guint c = 0; c < 3; c++)
      for (guint k = 0; k < 4; k++)
        rgb[3 * i + c] += x0[k * plane + i] * latent_rgb[k][c];
  guint8 *out = g_new (guint8, (gsize) *pw * *ph * 3);
  for (guint y = 0; y < *ph; y++)
    for (guint x = 0; x < *pw; x++)
      {
        const gfloat fy = CLAMP ((y + 0.5f) * r->h / *ph - 0.5f, 0.0f, r->h - 1.0f);
        const gfloat fx = CLAMP ((x + 0.5f) * r->w / *pw - 0.5f, 0.0f, r->w - 1.0f);
        const guint y0 = (guint) fy, x0i = (guint) fx;
        const guint y1 = MIN (y0 + 1, r->h - 1), x1 = MIN (x0i + 1, r->w - 1);
        const gfloat wy = fy - y0, wx = fx - x0i;
        for (guint c = 0; c < 3; c++)
          {
            const gfloat v = (1 - wy) * ((1 - wx) * rgb[3 * (y0 * r->w + x0i) + c]
                                         + wx * rgb[3 * (y0 * r->w + x1) + c])
                             + wy * ((1 - wx) * rgb[3 * (y1 * r->w + x0i) + c]
                                     + wx * rgb[3 * (y1 * r->w + x1) + c]);
            out[3 * ((gsize) y * *pw + x) + c] = (guint8) CLAMP ((v + 1) * 127.5f + 0.5f, 0, 255);
          }
      }
  return out;
}

/* ---- the parameters text ------------------------------------------------------------------- */

static void
append_number (GString *s, const gchar *key, gdouble v)
{
  gchar buf[G_ASCII_DTOSTR_BUF_SIZE];
  g_string_append_printf (s, ", %s: %s", key, g_ascii_formatd (buf, sizeof buf, "%g", v));
}

static gchar *
model_name (const gchar *path)
{
  g_autofree gchar *base = g_path_get_basename (path);
  gchar *dot = strrchr (base, '.');
  if (dot && dot != base && g_ascii_strcasecmp (dot, ".safetensors") == 0)
    *dot = '\0';
  return g_strdup (base);
}

/* sd-webui's "parameters": prompt, "Negative prompt: ...", then settings */
static gchar *
parameters_text (const Run *r, guint32 seed)
{
  const SdclRequest *q = r->req;
  GString *s = g_string_new (q->prompt ? q->prompt : "");
  if (q->negative_prompt && *q->negative_prompt)
    g_string_append_printf (s, "\nNegative prompt: %s", q->negative_prompt);
  g_string_append_printf (s, "\nSteps: %u, Sampler: %s", q->steps,
                          sdcl_sampler_display_name (q->sampler));
  if (q->schedule == SDCL_SCHEDULE_KARRAS)
    g_string_append (s, ", Schedule type: Karras");
  append_number (s, "CFG scale", q->cfg_scale);
  g_string_append_printf (s, ", Seed: %u, Size: %ux%u", seed, r->W, r->H);
  g_autofree gchar *name = model_name (sdcl_model_get_info (r->model)->path);
  g_string_append_printf (s, ", Model: %s", name);
  if (q->mode != SDCL_MODE_TXT2IMG)
    append_number (s, "Denoising strength", q->strength);
  if (q->clip_skip > 1)
    g_string_append_printf (s, ", Clip skip: %u", q->clip_skip);
  if (q->sampler == SDCL_SAMPLER_DDIM && q->eta > 0)
    append_number (s, "Eta DDIM", q->eta);
  /* the enlargement in the keys sd-webui's Extras tab uses for an upscale;
     Size stays what the model drew, as in its hires fix, but no "Hires"
     keys: those ask for a second diffusion pass, which this is not */
  if (r->out_W != r->W || r->out_H != r->H)
    g_string_append_printf (s, ", Postprocess upscale to: %ux%u, Postprocess upscaler: "
                            "sdcl edge", r->out_W, r->out_H);
  g_string_append (s, ", Version: sdcl " SDCL_VERSION);
  return g_string_free (s, FALSE);
}

/* ---- one image ------------------------------------------------------------------------------ */

static gboolean
cancelled (GError **error)
{
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CANCELLED, "cancelled");
  return FALSE;
}

/* One UNet evaluation: the guided noise (or v) prediction for x at step i.
 * With guidance the one input meets both texts (r->text's batch of two):
 * the UNet runs the layers before the text once for both. */
static gfloat *
predict (Run *r, const SdclScheduler *s, guint i, const gfloat *x, const gfloat *masked,
         GError **error)
{
  const guint Cin = r->unet_in;
  const gsize plane = (gsize) r->w * r->h;
  const gfloat scale = (gfloat) sdcl_scheduler_input_scale (s, i);
  g_autofree gfloat *in = g_new (gfloat, plane * Cin);
  for (gsize k = 0; k < r->n; k++)
    in[k] = x[k] * scale;
  if (Cin == 9)
    {
      memcpy (in + r->n, r->mask_latent, plane * sizeof (gfloat));
      memcpy (in + r->n + plane, masked, r->n * sizeof (gfloat));
    }
  g_autoptr (SdclTensor) xt = sdcl_tensor_new_4d (r->engine, SDCL_DTYPE_F32, r->w, r->h, Cin, 1,
                                                  error);
  if (!xt || !sdcl_tensor_write_f32 (xt, in, error))
    return NULL;
  const gfloat t = (gfloat) sdcl_scheduler_timestep (s, i);
  g_autoptr (SdclTensor) y = sdcl_unet_forward_text (r->unet, xt, &t, r->text, error);
  gfloat *out = y ? sdcl_tensor_read_f32 (y, error) : NULL;
  if (!out || !r->guided)
    return out;
  const gfloat g = (gfloat) r->req->cfg_scale;
  for (gsize k = 0; k < r->n; k++)
    out[k] = out[k] + g * (out[r->n + k] - out[k]);
  return out;
}

/* latent (scaled) -> [3][H][W] in [0, 1]; the unscaled latent goes to
 * `trace` (NULL: none) */
static gfloat *
decode (Run *r, const gfloat *x, SdclTrace *trace, GError **error)
{
  g_autofree gfloat *z = g_new (gfloat, r->n);
  for (gsize k = 0; k < r->n; k++)
    z[k] = x[k] / r->vc->scaling_factor;
  if (trace)
    trace->final_latent = g_memdup2 (z, r->n * sizeof *z);
  g_autoptr (SdclTensor) zt = sdcl_tensor_new_4d (r->engine, SDCL_DTYPE_F32, r->w, r->h, r->C, 1,
                                                  error);
  if (!zt || !sdcl_tensor_write_f32 (zt, z, error))
    return NULL;
  g_autoptr (SdclTensor) img = sdcl_vae_decode_tiled (r->vae, zt, 0, 0, error);
  gfloat *v = img ? sdcl_tensor_read_f32 (img, error) : NULL;
  if (!v)
    return NULL;
  for (gsize k = 0; k < (gsize) 3 * r->W * r->H; k++)
    v[k] = CLAMP (v[k] / 2 + 0.5f, 0.0f, 1.0f);
  return v;
}

/* [3][H][W] in [0, 1] -> RGB bytes; inpainting puts back the original
 * through the soft mask, so what the mask leaves out stays exact */
static guint8 *
to_pixels (const Run *r, const gfloat *v)
{
  const gsize plane = (gsize) r->W * r->H;
  guint8 *px = g_new (guint8, 3 * plane);
  for (gsize i = 0; i < plane; i++)
    for (gint c = 0; c < 3; c++)
      {
        gfloat out = nearbyintf (v[c * plane + i] * 255.0f);
        if (r->mask)
          {
            const gfloat m = r->mask[i], orig = r->req->init_image[3 * i + c];
            out = m == 0 ? orig : nearbyintf (orig * (1 - m) + out * m);
          }
        px[3 * i + c] = (guint8) CLAMP (out, 0, 255);
      }
  return px;
}

static SdclImage *
finish_image (const Run *r, guint8 *pixels, guint32 seed)
{
  SdclImage *img = g_new0 (SdclImage, 1);
  img->width = r->out_W;
  img->height = r->out_H;
  img->pixels = pixels;
  if (r->out_W != r->W || r->out_H != r->H)
    {
      img->pixels = sdcl_image_upscale (pixels, r->W, r->H, r->out_W, r->out_H);
      g_free (pixels);
    }
  img->seed = seed;
  img->parameters = parameters_text (r, seed);
  return img;
}

/* One image of the request between its phases: what the VAE encoder
 * made of the init image, then the latent the sampler draws. */
typedef struct
{
  guint32        seed;
  SdclScheduler *s;
  SdclRng       *rng;
  guint          first, run_steps;
  gfloat        *x, *noise, *image_latent, *masked_latent;
  SdclImage     *image;       /* the finished image, once there is one */
} Draw;

static void
draw_clear (Draw *d)
{
  g_clear_pointer (&d->s, sdcl_scheduler_free);
  g_clear_pointer (&d->rng, sdcl_rng_free);
  g_clear_pointer (&d->x, g_free);
  g_clear_pointer (&d->noise, g_free);
  g_clear_pointer (&d->image_latent, g_free);
  g_clear_pointer (&d->masked_latent, g_free);
  g_clear_pointer (&d->image, sdcl_image_free);
}

/* Phase one (VAE encoder): the scheduler, the generator, the starting
 * latent. An image too weakly changed for one step is finished here. */
static gboolean
start_image (Run *r, guint index, Draw *d, GError **error)
{
  const SdclRequest *q = r->req;
  SdclTrace *trace = index == 0 ? r->trace : NULL;
  d->s = sdcl_scheduler_new (&r->sched, q->sampler, q->schedule, q->steps, q->eta, error);
  if (!d->s)
    return FALSE;
  d->run_steps = q->steps;
  if (q->mode != SDCL_MODE_TXT2IMG)
    d->run_steps = sdcl_scheduler_set_strength (d->s, q->strength);
  if (d->run_steps == 0)
    {
      /* too little strength for one step: the image as it came */
      d->image = finish_image (r, g_memdup2 (q->init_image, (gsize) 3 * r->W * r->H), d->seed);
      return TRUE;
    }
  d->first = sdcl_scheduler_first (d->s);

  d->rng = sdcl_rng_new (d->seed);
  d->x = g_new (gfloat, r->n);
  d->noise = g_new (gfloat, r->n);
  const gboolean full_strength = q->mode == SDCL_MODE_TXT2IMG || q->strength == 1.0;
  if (q->mode == SDCL_MODE_IMG2IMG
      || (q->mode == SDCL_MODE_INPAINT && (r->blend || !full_strength)))
    {
      d->image_latent = encode_sample (r, r->image, d->rng, error);
      if (!d->image_latent)
        return FALSE;
    }
  sdcl_rng_randn (d->rng, d->noise, r->n);
  if (full_strength)
    {
      const gfloat sigma = (gfloat) sdcl_scheduler_init_noise_sigma (d->s);
      for (gsize k = 0; k < r->n; k++)
        d->x[k] = d->noise[k] * sigma;
    }
  else
    sdcl_scheduler_add_noise (d->s, d->first, d->image_latent, d->noise, d->x, r->n);
  if (q->mode == SDCL_MODE_INPAINT)
    {
      /* the masked image: grey where the mask is */
      const gsize plane = (gsize) r->W * r->H;
      g_autofree gfloat *masked = g_memdup2 (r->image, 3 * plane * sizeof (gfloat));
      for (gsize i = 0; i < plane; i++)
        if (r->mask[i] >= 0.5f)
          masked[i] = masked[plane + i] = masked[2 * plane + i] = 0;
      if (r->unet_in == 9)
        d->masked_latent = encode_sample (r, masked, d->rng, error);
      else
        {
          /* diffusers encodes it all the same: draw what it draws */
          d->masked_latent = g_new (gfloat, r->n);
          sdcl_rng_randn (d->rng, d->masked_latent, r->n);
        }
      if (!d->masked_latent)
        return FALSE;
    }
  if (trace)
    {
      trace->noise = g_memdup2 (d->noise, r->n * sizeof *d->noise);
      trace->step_latents = g_array_new (FALSE, FALSE, sizeof (gfloat));
    }
  return TRUE;
}

/* Phase two (UNet): the sampler's steps. */
static gboolean
sample_image (Run *r, guint index, Draw *d, GError **error)
{
  const SdclRequest *q = r->req;
  SdclTrace *trace = index == 0 ? r->trace : NULL;
  const gfloat *masked = d->masked_latent ? d->masked_latent : r->masked_mean;
  g_autofree gfloat *x0 = g_new (gfloat, r->n);
  g_autofree gfloat *proper = r->blend ? g_new (gfloat, r->n) : NULL;
  const guint steps = sdcl_scheduler_steps (d->s);
  const gsize plane = (gsize) r->w * r->h;
  for (guint i = d->first; i < steps; i++)
    {
      g_autofree gfloat *eps = predict (r, d->s, i, d->x, masked, error);
      if (!eps)
        return FALSE;
      sdcl_scheduler_step (d->s, i, eps, d->x, d->rng, x0, r->n);
      if (r->blend)
        {
          /* keep the original, noised to the next step's level, outside the mask */
          sdcl_scheduler_add_noise (d->s, i + 1, d->image_latent, d->noise, proper, r->n);
          for (gsize k = 0; k < r->n; k++)
            {
              const gfloat m = r->mask_latent[k % plane];
              d->x[k] = (1 - m) * proper[k] + m * d->x[k];
            }
        }
      if (trace)
        g_array_append_vals (trace->step_latents, d->x, r->n);
      if (r->progress)
        {
          SdclProgress p = {
            .image = index, .images = q->batch_count, .step = i - d->first + 1,
            .steps = d->run_steps, .elapsed = (g_get_monotonic_time () - r->t0) / 1e6,
            .seed = d->seed,
          };
          g_autofree guint8 *preview = make_preview (r, x0, &p.preview_width, &p.preview_height);
          p.preview = preview;
          if (!r->progress (&p, r->user_data))
            return cancelled (error);
        }
    }
  return TRUE;
}

/* Phase three (VAE decoder): the picture. */
static gboolean
decode_image (Run *r, guint index, Draw *d, GError **error)
{
  SdclTrace *trace = index == 0 ? r->trace : NULL;
  g_autofree gfloat *img = decode (r, d->x, trace, error);
  if (!img)
    return FALSE;
  if (trace)
    trace->image = g_memdup2 (img, (gsize) 3 * r->W * r->H * sizeof *img);
  d->image = finish_image (r, to_pixels (r, img), d->seed);
  return TRUE;
}

/* The request's images, a phase at a time over all of them, each phase
 * with the model part it needs: under SDCL_MODEL_ON_DEMAND only that part
 * is on the device. */
static GPtrArray *
run_images (Run *r, GError **error)
{
  const SdclRequest *q = r->req;
  const guint n = q->batch_count;
  const guint32 base = q->seed < 0 ? g_random_int () : (guint32) q->seed;
  g_autofree Draw *draws = g_new0 (Draw, n);
  for (guint i = 0; i < n; i++)
    draws[i].seed = base + i;
  /* inpainting and img2img encode the image; an inpainting UNet asked for
     a whole picture encodes a grey one */
  const gboolean encodes = q->mode != SDCL_MODE_TXT2IMG || r->unet_in == 9;
  gboolean ok = !encodes || sdcl_model_acquire (r->model, SDCL_PART_VAE_ENCODER, error);
  ok = ok && prepare_images (r, error);
  for (guint i = 0; ok && i < n; i++)
    ok = start_image (r, i, &draws[i], error);
  sdcl_model_done (r->model, SDCL_PART_VAE_ENCODER);

  gboolean sampling = FALSE;
  for (guint i = 0; i < n; i++)
    sampling |= draws[i].image == NULL;
  if (ok && sampling)
    {
      ok = sdcl_model_acquire (r->model, SDCL_PART_UNET, error);
      r->unet = sdcl_model_unet (r->model);
      /* the text's keys and values once for every step of every image */
      r->text = ok ? sdcl_unet_text_new (r->unet, r->context, error) : NULL;
      ok = r->text != NULL;
      for (guint i = 0; ok && i < n; i++)
        ok = draws[i].image || sample_image (r, i, &draws[i], error);
      g_clear_pointer (&r->text, sdcl_unet_text_free);
      sdcl_model_done (r->model, SDCL_PART_UNET);
      r->unet = NULL;
      ok = ok && sdcl_model_acquire (r->model, SDCL_PART_VAE_DECODER, error);
      for (guint i = 0; ok && i < n; i++)
        ok = draws[i].image || decode_image (r, i, &draws[i], error);
      sdcl_model_done (r->model, SDCL_PART_VAE_DECODER);
    }

  GPtrArray *images = ok ? g_ptr_array_new_with_free_func ((GDestroyNotify) sdcl_image_free)
                         : NULL;
  for (guint i = 0; i < n; i++)
    {
      if (images)
        g_ptr_array_add (images, g_steal_pointer (&draws[i].image));
      draw_clear (&draws[i]);
    }
  return images;
}

GPtrArray *
sdcl_generate_traced (SdclModel *model, const SdclRequest *request, SdclProgressFunc progress,
                      gpointer user_data, SdclTrace *trace, GError **error)
{
  g_return_val_if_fail (model && request, NULL);
  Run r = {
    .model = model, .req = request, .engine = sdcl_model_engine (model),
    .vae = sdcl_model_vae (model),
    .unet_in = sdcl_model_unet_config (model)->in_channels,
    .progress = progress, .user_data = user_data, .t0 = g_get_monotonic_time (), .trace = trace,
  };
  r.vc = sdcl_vae_config (r.vae);
  if (!check_request (&r, error)
      || !sdcl_schedule_config_parse (&r.sched, sdcl_model_scheduler_json (model), error))
    return NULL;
  /* the checks a sampler makes, before any work */
  {
    g_autoptr (SdclScheduler) s = sdcl_scheduler_new (&r.sched, request->sampler,
                                                      request->schedule, request->steps,
                                                      request->eta, error);
    if (!s)
      return NULL;
  }
  const guint f = sdcl_model_get_info (model)->latent_factor;
  r.w = r.W / f;
  r.h = r.H / f;
  r.C = r.vc->latent_channels;
  r.n = (gsize) r.w * r.h * r.C;
  r.guided = request->cfg_scale > 1.0;
  r.blend = request->mode == SDCL_MODE_INPAINT && r.unet_in != 9;
  if (trace)
    {
      sdcl_trace_clear (trace);
      trace->latent_width = r.w;
      trace->latent_height = r.h;
      trace->latent_channels = r.C;
    }

  GPtrArray *images = NULL;
  gboolean ok = sdcl_model_acquire (model, SDCL_PART_TEXT_ENCODER, error)
                && encode_prompts (&r, error);
  sdcl_model_done (model, SDCL_PART_TEXT_ENCODER);
  if (ok)
    images = run_images (&r, error);
  run_clear (&r);
  return images;
}

GPtrArray *
sdcl_generate (SdclModel *model, const SdclRequest *request, SdclProgressFunc progress,
               gpointer user_data, GError **error)
{
  return sdcl_generate_traced (model, request, progress, user_data, NULL, error);
}
