/* vae.c — the KL autoencoder (diffusers' AutoencoderKL): the encoder turns
 * an image in [-1, 1] into the mean and log-variance of its latent, the
 * decoder turns a latent back into an image. Tiled versions cut large
 * inputs into overlapping tiles and blend the seams, so any size fits in
 * device memory.
 */
#include "model.h"

#include <string.h>

/* The VAE's mid-block self-attention: one head as wide as the channels. */
typedef struct
{
  gint      groups;
  SdclLayer norm;        /* [C] */
  SdclLayer qkv;         /* [3C, C], stacked to_q/to_k/to_v */
  SdclLayer out;         /* [C, C] */
} Attention;

typedef struct
{
  SdclResBlock *res;     /* [layers_per_block] encoder, [+1] decoder */
  SdclLayer     sample;  /* down- or upsampling conv; w NULL at the last level */
} Level;

struct _SdclVae
{
  SdclVaeConfig c;
  SdclEngine   *engine;
  SdclVaeParts  parts;                 /* the halves whose weights are loaded */
  /* encoder */
  SdclLayer     enc_in;                 /* [ch0, 3, 3, 3] */
  Level         enc[SDCL_MAX_LEVELS];
  SdclResBlock  enc_mid[2];
  Attention     enc_attn;
  SdclLayer     enc_norm, enc_out;      /* [top], [2·latent, top, 3, 3] */
  SdclLayer     quant;                  /* [2·latent, 2·latent, 1, 1] */
  /* decoder */
  SdclLayer     post_quant;             /* [latent, latent, 1, 1] */
  SdclLayer     dec_in;                 /* [top, latent, 3, 3] */
  SdclResBlock  dec_mid[2];
  Attention     dec_attn;
  Level         dec[SDCL_MAX_LEVELS];
  SdclLayer     dec_norm, dec_out;      /* [ch0], [3, ch0, 3, 3] */
};

static void
attention_clear (Attention *a)
{
  sdcl_layer_clear (&a->norm);
  sdcl_layer_clear (&a->qkv);
  sdcl_layer_clear (&a->out);
}

static void
level_clear (Level *l, gint n)
{
  for (gint j = 0; l->res && j < n; j++)
    sdcl_resblock_clear (&l->res[j]);
  g_free (l->res);
  sdcl_layer_clear (&l->sample);
}

/* Releases the encoder's or the decoder's weights (parts), keeping the rest. */
void
sdcl_vae_release_parts (SdclVae *v, SdclVaeParts parts)
{
  const gint n = v->c.layers_per_block;
  if (parts & SDCL_VAE_ENCODER)
    {
      for (gint i = 0; i < v->c.n_levels; i++)
        level_clear (&v->enc[i], n);
      for (gint i = 0; i < 2; i++)
        sdcl_resblock_clear (&v->enc_mid[i]);
      attention_clear (&v->enc_attn);
      SdclLayer *all[] = { &v->enc_in, &v->enc_norm, &v->enc_out, &v->quant };
      for (guint i = 0; i < G_N_ELEMENTS (all); i++)
        sdcl_layer_clear (all[i]);
      memset (v->enc, 0, sizeof v->enc);
    }
  if (parts & SDCL_VAE_DECODER)
    {
      for (gint i = 0; i < v->c.n_levels; i++)
        level_clear (&v->dec[i], n + 1);
      for (gint i = 0; i < 2; i++)
        sdcl_resblock_clear (&v->dec_mid[i]);
      attention_clear (&v->dec_attn);
      SdclLayer *all[] = { &v->post_quant, &v->dec_in, &v->dec_norm, &v->dec_out };
      for (guint i = 0; i < G_N_ELEMENTS (all); i++)
        sdcl_layer_clear (all[i]);
      memset (v->dec, 0, sizeof v->dec);
    }
  v->parts &= ~parts;
}

void
sdcl_vae_free (SdclVae *v)
{
  if (!v)
    return;
  sdcl_vae_release_parts (v, SDCL_VAE_ENCODER | SDCL_VAE_DECODER);
  g_free (v);
}

SdclVaeParts
sdcl_vae_parts (SdclVae *vae)
{
  return vae->parts;
}

const SdclVaeConfig *
sdcl_vae_config (SdclVae *vae)
{
  return &vae->c;
}

static gboolean
attention_load (SdclWeights *w, Attention *a, const gchar *prefix, gint C, gint groups,
                GError **error)
{
  a->groups = groups;
  g_autofree gchar *norm = g_strconcat (prefix, "group_norm.", NULL);
  g_autofree gchar *q = g_strconcat (prefix, "to_q.", NULL);
  g_autofree gchar *k = g_strconcat (prefix, "to_k.", NULL);
  g_autofree gchar *v = g_strconcat (prefix, "to_v.", NULL);
  g_autofree gchar *o = g_strconcat (prefix, "to_out.0.", NULL);
  const gchar *qkv[] = { q, k, v };
  return sdcl_weights_layer (w, &a->norm, SDCL_LAYER_NORM, norm, C, 0, TRUE, error)
         && sdcl_weights_fused (w, &a->qkv, qkv, 3, C, C, TRUE, error)
         && sdcl_weights_layer (w, &a->out, SDCL_LAYER_LINEAR, o, C, C, TRUE, error);
}

static SdclTensor *
attention_forward (const Attention *a, const SdclTensor *x, GError **error)
{
  const gint64 C = x->ne[2];
  g_autoptr (SdclTensor) n = sdcl_group_norm (x, a->norm.w, a->norm.b, a->groups, 1e-6f, FALSE,
                                              error);
  g_autoptr (SdclTensor) tok = n ? sdcl_image_to_tokens (n, error) : NULL;
  g_autoptr (SdclTensor) qkv = tok ? sdcl_linear (tok, a->qkv.w, a->qkv.b, error) : NULL;
  if (!qkv)
    return NULL;
  g_clear_pointer (&n, sdcl_tensor_free);
  const gint64 ne[4] = { C, qkv->ne[1], qkv->ne[2], 1 };
  g_autoptr (SdclTensor) q = sdcl_tensor_view (qkv, ne, qkv->nb, 0, error);
  g_autoptr (SdclTensor) k = q ? sdcl_tensor_view (qkv, ne, qkv->nb, C * 4, error) : NULL;
  g_autoptr (SdclTensor) v = k ? sdcl_tensor_view (qkv, ne, qkv->nb, 2 * C * 4, error) : NULL;
  g_autoptr (SdclTensor) o = v ? sdcl_attention (q, k, v, 1, FALSE, error) : NULL;
  g_autoptr (SdclTensor) p = o ? sdcl_linear (o, a->out.w, a->out.b, error) : NULL;
  return p ? sdcl_add_tokens_to_image (x, p, error) : NULL;
}

static gboolean
load_halves (SdclVae *v, SdclWeights *w, const gchar *prefix, SdclVaeParts parts, GError **error)
{
  const SdclVaeConfig *c = &v->c;
  const gint L = c->n_levels, n = c->layers_per_block, z = c->latent_channels, g = c->groups;
  const gint ch0 = c->channels[0], top = c->channels[L - 1];
  const gfloat eps = 1e-6f;
  g_autofree gchar *name = NULL;
#define NAME(...) (g_free (name), name = g_strdup_printf (__VA_ARGS__))
#define MID(part, r, a)                                                                     \
  (sdcl_resblock_load (w, &r[0], NAME ("%s" part ".mid_block.resnets.0.", prefix), top, top, 0, \
                       g, eps, error)                                                       \
   && (!c->mid_attention                                                                    \
       || attention_load (w, &a, NAME ("%s" part ".mid_block.attentions.0.", prefix), top, g, \
                          error))                                                           \
   && sdcl_resblock_load (w, &r[1], NAME ("%s" part ".mid_block.resnets.1.", prefix), top, top, 0, \
                          g, eps, error))
  if (parts & SDCL_VAE_ENCODER)
    {
      if (!sdcl_weights_layer (w, &v->enc_in, SDCL_LAYER_CONV3, NAME ("%sencoder.conv_in.", prefix),
                               ch0, c->image_channels, TRUE, error))
        return FALSE;
      gint ch = ch0;
      for (gint i = 0; i < L; i++)
        {
          v->enc[i].res = g_new0 (SdclResBlock, n);
          for (gint j = 0; j < n; j++)
            {
              if (!sdcl_resblock_load (w, &v->enc[i].res[j],
                                       NAME ("%sencoder.down_blocks.%d.resnets.%d.", prefix, i, j),
                                       ch, c->channels[i], 0, g, eps, error))
                return FALSE;
              ch = c->channels[i];
            }
          if (i < L - 1
              && !sdcl_weights_layer (w, &v->enc[i].sample, SDCL_LAYER_CONV3,
                                      NAME ("%sencoder.down_blocks.%d.downsamplers.0.conv.", prefix, i),
                                      ch, ch, TRUE, error))
            return FALSE;
        }
      if (!MID ("encoder", v->enc_mid, v->enc_attn)
          || !sdcl_weights_layer (w, &v->enc_norm, SDCL_LAYER_NORM,
                                  NAME ("%sencoder.conv_norm_out.", prefix), top, 0, TRUE, error)
          || !sdcl_weights_layer (w, &v->enc_out, SDCL_LAYER_CONV3,
                                  NAME ("%sencoder.conv_out.", prefix), 2 * z, top, TRUE, error)
          || !sdcl_weights_layer (w, &v->quant, SDCL_LAYER_CONV1, NAME ("%squant_conv.", prefix),
                                  2 * z, 2 * z, TRUE, error))
        return FALSE;
    }
  if (!(parts & SDCL_VAE_DECODER))
    return TRUE;
  if (!sdcl_weights_layer (w, &v->post_quant, SDCL_LAYER_CONV1, NAME ("%spost_quant_conv.", prefix),
                           z, z, TRUE, error)
      || !sdcl_weights_layer (w, &v->dec_in, SDCL_LAYER_CONV3, NAME ("%sdecoder.conv_in.", prefix),
                              top, z, TRUE, error)
      || !MID ("decoder", v->dec_mid, v->dec_attn))
    return FALSE;
  gint ch = top;
  for (gint i = 0; i < L; i++)
    {
      const gint out = c->channels[L - 1 - i];
      v->dec[i].res = g_new0 (SdclResBlock, n + 1);
      for (gint j = 0; j <= n; j++)
        {
          if (!sdcl_resblock_load (w, &v->dec[i].res[j],
                                   NAME ("%sdecoder.up_blocks.%d.resnets.%d.", prefix, i, j),
                                   ch, out, 0, g, eps, error))
            return FALSE;
          ch = out;
        }
      if (i < L - 1
          && !sdcl_weights_layer (w, &v->dec[i].sample, SDCL_LAYER_CONV3,
                                  NAME ("%sdecoder.up_blocks.%d.upsamplers.0.conv.", prefix, i),
                                  ch, ch, TRUE, error))
        return FALSE;
    }
  if (!sdcl_weights_layer (w, &v->dec_norm, SDCL_LAYER_NORM, NAME ("%sdecoder.conv_norm_out.", prefix),
                           ch0, 0, TRUE, error)
      || !sdcl_weights_layer (w, &v->dec_out, SDCL_LAYER_CONV3, NAME ("%sdecoder.conv_out.", prefix),
                              c->image_channels, ch0, TRUE, error))
    return FALSE;
#undef MID
#undef NAME
  return TRUE;
}

SdclVae *
sdcl_vae_load (SdclWeights *w, const SdclVaeConfig *c, const gchar *prefix, SdclVaeParts parts,
               GError **error)
{
  g_autoptr (SdclVae) v = g_new0 (SdclVae, 1);
  v->c = *c;
  v->engine = w->engine;
  return sdcl_vae_load_parts (v, w, prefix, parts, error) ? g_steal_pointer (&v) : NULL;
}

/* Loads the halves among `parts` that are not loaded yet. */
gboolean
sdcl_vae_load_parts (SdclVae *v, SdclWeights *w, const gchar *prefix, SdclVaeParts parts,
                     GError **error)
{
  const SdclVaeParts missing = parts & ~v->parts;
  /* a half that fails to load is released again, half-loaded layers and all */
  v->parts |= missing;
  if (!load_halves (v, w, prefix, missing, error))
    {
      sdcl_vae_release_parts (v, missing);
      return FALSE;
    }
  return TRUE;
}

/* Replaces *x with fx (consumed); FALSE when fx is NULL. */
static gboolean
step (SdclTensor **x, SdclTensor *fx)
{
  if (!fx)
    return FALSE;
  sdcl_tensor_free (*x);
  *x = fx;
  return TRUE;
}

static gboolean
check_input (SdclVae *v, const SdclTensor *x, gint64 channels, gint64 multiple, const gchar *what,
             GError **error)
{
  if (x->ne[2] == channels && x->ne[0] % multiple == 0 && x->ne[1] % multiple == 0)
    return TRUE;
  g_autofree gchar *d = sdcl_tensor_describe (x);
  g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE,
               "VAE %s %s: needs %" G_GINT64_FORMAT " channels and a width and height that are "
               "multiples of %" G_GINT64_FORMAT, what, d, channels, multiple);
  return FALSE;
}

gboolean
sdcl_vae_encode (SdclVae *v, const SdclTensor *image, SdclTensor **mean, SdclTensor **logvar,
                 GError **error)
{
  const SdclVaeConfig *c = &v->c;
  const gint L = c->n_levels, n = c->layers_per_block, z = c->latent_channels;
  if (!(v->parts & SDCL_VAE_ENCODER))
    {
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_ARGUMENT,
                   "this VAE's encoder is not loaded");
      return FALSE;
    }
  if (!check_input (v, image, c->image_channels, 1 << (L - 1), "input image", error))
    return FALSE;
  g_autoptr (SdclTensor) h = sdcl_conv2d (image, v->enc_in.w, v->enc_in.b, 1, 1, error);
  if (!h)
    return FALSE;
  for (gint i = 0; i < L; i++)
    {
      for (gint j = 0; j < n; j++)
        if (!step (&h, sdcl_resblock_forward (&v->enc[i].res[j], h, NULL, error)))
          return FALSE;
      /* diffusers' Downsample2D with padding 0 pads right and bottom by one */
      if (v->enc[i].sample.w
          && !step (&h, sdcl_conv2d_padded (h, v->enc[i].sample.w, v->enc[i].sample.b, 2, 0, 1,
                                            error)))
        return FALSE;
    }
  if (!step (&h, sdcl_resblock_forward (&v->enc_mid[0], h, NULL, error))
      || (c->mid_attention && !step (&h, attention_forward (&v->enc_attn, h, error)))
      || !step (&h, sdcl_resblock_forward (&v->enc_mid[1], h, NULL, error))
      || !step (&h, sdcl_group_norm (h, v->enc_norm.w, v->enc_norm.b, c->groups, 1e-6f, TRUE, error))
      || !step (&h, sdcl_conv2d (h, v->enc_out.w, v->enc_out.b, 1, 1, error))
      || !step (&h, sdcl_conv2d (h, v->quant.w, v->quant.b, 1, 0, error)))
    return FALSE;
  const gint64 ne[4] = { h->ne[0], h->ne[1], z, h->ne[3] };
  for (gint part = 0; part < 2; part++)
    {
      SdclTensor **out = part == 0 ? mean : logvar;
      if (!out)
        continue;
      g_autoptr (SdclTensor) view = sdcl_tensor_view (h, ne, h->nb, part * z * h->nb[2], error);
      *out = view ? sdcl_contiguous (view, error) : NULL;
      if (!*out)
        {
          if (part == 1 && mean)
            g_clear_pointer (mean, sdcl_tensor_free);
          return FALSE;
        }
    }
  return TRUE;
}

SdclTensor *
sdcl_vae_decode (SdclVae *v, const SdclTensor *latent, GError **error)
{
  const SdclVaeConfig *c = &v->c;
  const gint L = c->n_levels, n = c->layers_per_block;
  if (!(v->parts & SDCL_VAE_DECODER))
    {
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_ARGUMENT,
                   "this VAE's decoder is not loaded");
      return NULL;
    }
  if (!check_input (v, latent, c->latent_channels, 1, "latent", error))
    return NULL;
  g_autoptr (SdclTensor) h = sdcl_conv2d (latent, v->post_quant.w, v->post_quant.b, 1, 0, error);
  if (!h
      || !step (&h, sdcl_conv2d (h, v->dec_in.w, v->dec_in.b, 1, 1, error))
      || !step (&h, sdcl_resblock_forward (&v->dec_mid[0], h, NULL, error))
      || (c->mid_attention && !step (&h, attention_forward (&v->dec_attn, h, error)))
      || !step (&h, sdcl_resblock_forward (&v->dec_mid[1], h, NULL, error)))
    return NULL;
  for (gint i = 0; i < L; i++)
    {
      for (gint j = 0; j <= n; j++)
        if (!step (&h, sdcl_resblock_forward (&v->dec[i].res[j], h, NULL, error)))
          return NULL;
      if (v->dec[i].sample.w
          && (!step (&h, sdcl_upsample_nearest2x (h, error))
              || !step (&h, sdcl_conv2d (h, v->dec[i].sample.w, v->dec[i].sample.b, 1, 1, error))))
        return NULL;
    }
  if (!step (&h, sdcl_group_norm (h, v->dec_norm.w, v->dec_norm.b, c->groups, 1e-6f, TRUE, error)))
    return NULL;
  return sdcl_conv2d (h, v->dec_out.w, v->dec_out.b, 1, 1, error);
}

/* ---- tiles ------------------------------------------------------------------------ */

/* Tile starts along one side of `size`: tiles of `tile` overlapping by at
 * least `overlap`, the last one flush with the end. */
static GArray *
tile_starts (gint size, gint tile, gint overlap)
{
  GArray *a = g_array_new (FALSE, FALSE, sizeof (gint));
  if (size <= tile)
    {
      const gint zero = 0;
      g_array_append_val (a, zero);
      return a;
    }
  const gint stride = tile - overlap;
  const gint n = 1 + (size - tile + stride - 1) / stride;
  for (gint i = 0; i < n; i++)
    {
      gint s = MIN (i * stride, size - tile);
      g_array_append_val (a, s);
    }
  return a;
}

/* Blend weight of position p inside a tile of `len` at `start`, in a side
 * of `size`: a linear ramp over `ramp` where the tile meets another. */
static gfloat
ramp_weight (gint p, gint start, gint len, gint size, gint ramp)
{
  gfloat w = 1.0f;
  if (start > 0 && p < ramp)
    w = MIN (w, (p + 0.5f) / ramp);
  if (start + len < size && len - 1 - p < ramp)
    w = MIN (w, (len - p - 0.5f) / ramp);
  return w;
}

typedef SdclTensor *(*TileFunc) (SdclVae *v, const SdclTensor *in, GError **error);

/* Runs f over tiles of `in` ([w, h, C, B]; `tile` input pixels a side,
 * neighbours overlapping by at least `overlap`) whose outputs are up/down
 * times the input's size, and blends them on the host. */
static SdclTensor *
run_tiled (SdclVae *v, const SdclTensor *in, gint tile, gint overlap, gint up, gint down,
           TileFunc f, GError **error)
{
  const gint w = in->ne[0], h = in->ne[1];
  g_autoptr (GArray) xs = tile_starts (w, tile, overlap);
  g_autoptr (GArray) ys = tile_starts (h, tile, overlap);
  g_autofree gfloat *acc = NULL, *wsum = NULL;
  gint64 ow = (gint64) w * up / down, oh = (gint64) h * up / down, oc = 0, B = in->ne[3];
  const gint ramp = overlap * up / down;
  for (guint yi = 0; yi < ys->len; yi++)
    for (guint xi = 0; xi < xs->len; xi++)
      {
        const gint x0 = g_array_index (xs, gint, xi), y0 = g_array_index (ys, gint, yi);
        const gint64 ne[4] = { MIN (tile, w), MIN (tile, h), in->ne[2], B };
        const gsize off = x0 * in->nb[0] + y0 * in->nb[1];
        g_autoptr (SdclTensor) view = sdcl_tensor_view (in, ne, in->nb, off, error);
        g_autoptr (SdclTensor) part = view ? sdcl_contiguous (view, error) : NULL;
        g_autoptr (SdclTensor) out = part ? f (v, part, error) : NULL;
        g_autofree gfloat *o = out ? sdcl_tensor_read_f32 (out, error) : NULL;
        if (!o)
          return NULL;
        const gint tw = out->ne[0], th = out->ne[1], ox = x0 * up / down, oy = y0 * up / down;
        if (!acc)
          {
            oc = out->ne[2];
            acc = g_new0 (gfloat, ow * oh * oc * B);
            wsum = g_new0 (gfloat, ow * oh);
          }
        for (gint y = 0; y < th; y++)
          for (gint x = 0; x < tw; x++)
            {
              const gfloat wt = ramp_weight (x, ox, tw, ow, ramp) * ramp_weight (y, oy, th, oh, ramp);
              const gint64 at = (gint64) (oy + y) * ow + ox + x;
              wsum[at] += wt;
              for (gint64 cb = 0; cb < oc * B; cb++)
                acc[cb * ow * oh + at] += wt * o[(cb * th + y) * tw + x];
            }
      }
  for (gint64 cb = 0; cb < oc * B; cb++)
    for (gint64 i = 0; i < ow * oh; i++)
      acc[cb * ow * oh + i] /= wsum[i];
  g_autoptr (SdclTensor) result = sdcl_tensor_new_4d (in->engine, SDCL_DTYPE_F32, ow, oh, oc, B,
                                                      error);
  if (!result || !sdcl_tensor_write_f32 (result, acc, error))
    return NULL;
  return g_steal_pointer (&result);
}

/* Largest tile side (latent pixels, a multiple of 8) whose decode fits in
 * a share of the device: the decoder's widest activations are ch0 channels
 * at full resolution, a handful alive at once, plus the conv input copy. */
static gint
auto_tile (SdclVae *v)
{
  const SdclDeviceInfo *d = sdcl_engine_device (v->engine);
  const gint64 f = 1 << (v->c.n_levels - 1);
  const gint64 per_px = (gint64) v->c.channels[0] * f * f * sizeof (gfloat);
  const guint64 budget = MIN (d->global_mem_bytes / 4, (guint64) 1536 << 20);
  gint t = 8;
  while ((guint64) (t + 8) * (t + 8) * per_px * 6 <= budget
         && (guint64) (t + 8) * (t + 8) * per_px <= d->max_alloc_bytes / 2)
    t += 8;
  return t;
}

static SdclTensor *
decode_tile (SdclVae *v, const SdclTensor *in, GError **error)
{
  return sdcl_vae_decode (v, in, error);
}

static SdclTensor *
encode_tile (SdclVae *v, const SdclTensor *in, GError **error)
{
  SdclTensor *mean = NULL;
  return sdcl_vae_encode (v, in, &mean, NULL, error) ? mean : NULL;
}

SdclTensor *
sdcl_vae_decode_tiled (SdclVae *v, const SdclTensor *latent, gint tile, gint overlap,
                       GError **error)
{
  if (!check_input (v, latent, v->c.latent_channels, 1, "latent", error))
    return NULL;
  if (tile <= 0)
    tile = auto_tile (v);
  if (overlap <= 0 || overlap >= tile)
    overlap = MAX (1, tile / 4);
  if (latent->ne[0] <= tile && latent->ne[1] <= tile)
    return sdcl_vae_decode (v, latent, error);
  const gint f = 1 << (v->c.n_levels - 1);
  return run_tiled (v, latent, tile, overlap, f, 1, decode_tile, error);
}

gboolean
sdcl_vae_encode_tiled (SdclVae *v, const SdclTensor *image, gint tile, gint overlap,
                       SdclTensor **mean, SdclTensor **logvar, GError **error)
{
  const gint f = 1 << (v->c.n_levels - 1);
  if (!check_input (v, image, v->c.image_channels, f, "input image", error))
    return FALSE;
  /* `tile` and `overlap` count latent pixels, as for decoding */
  if (tile <= 0)
    tile = auto_tile (v);
  if (overlap <= 0 || overlap >= tile)
    overlap = MAX (1, tile / 4);
  if (image->ne[0] <= tile * f && image->ne[1] <= tile * f)
    return sdcl_vae_encode (v, image, mean, logvar, error);
  if (logvar)
    *logvar = NULL;
  *mean = run_tiled (v, image, tile * f, overlap * f, 1, f, encode_tile, error);
  return *mean != NULL;
}
