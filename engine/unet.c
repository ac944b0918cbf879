/* unet.c — the SD 1.x denoiser (diffusers' UNet2DConditionModel): time
 * embedding, down levels of resnets with cross-attention transformers,
 * a mid block, up levels fed by the skip connections, output conv. The
 * architecture comes from SdclUnetConfig, so smaller UNets of the same
 * family run on this code too. Resnets and spatial self-attention are
 * shared with the VAE (vae.c).
 */
#include "model.h"

/* ---- resnet block (diffusers' ResnetBlock2D) ------------------------------------ */

void
sdcl_resblock_clear (SdclResBlock *r)
{
  SdclLayer *all[] = { &r->norm1, &r->conv1, &r->time, &r->norm2, &r->conv2, &r->shortcut };
  for (guint i = 0; i < G_N_ELEMENTS (all); i++)
    sdcl_layer_clear (all[i]);
}

gboolean
sdcl_resblock_load (SdclWeights *w, SdclResBlock *r, const gchar *prefix, gint in, gint out,
                    gint time_dim, gint groups, gfloat eps, GError **error)
{
  r->in = in;
  r->out = out;
  r->groups = groups;
  r->eps = eps;
  g_autofree gchar *n1 = g_strconcat (prefix, "norm1.", NULL);
  g_autofree gchar *c1 = g_strconcat (prefix, "conv1.", NULL);
  g_autofree gchar *t = g_strconcat (prefix, "time_emb_proj.", NULL);
  g_autofree gchar *n2 = g_strconcat (prefix, "norm2.", NULL);
  g_autofree gchar *c2 = g_strconcat (prefix, "conv2.", NULL);
  g_autofree gchar *sc = g_strconcat (prefix, "conv_shortcut.", NULL);
  return sdcl_weights_layer (w, &r->norm1, SDCL_LAYER_NORM, n1, in, 0, TRUE, error)
         && sdcl_weights_layer (w, &r->conv1, SDCL_LAYER_CONV3, c1, out, in, TRUE, error)
         && (time_dim == 0
             || sdcl_weights_layer (w, &r->time, SDCL_LAYER_LINEAR, t, out, time_dim, TRUE, error))
         && sdcl_weights_layer (w, &r->norm2, SDCL_LAYER_NORM, n2, out, 0, TRUE, error)
         && sdcl_weights_layer (w, &r->conv2, SDCL_LAYER_CONV3, c2, out, out, TRUE, error)
         && (in == out
             || sdcl_weights_layer (w, &r->shortcut, SDCL_LAYER_CONV1, sc, out, in, TRUE, error));
}

SdclTensor *
sdcl_resblock_forward (const SdclResBlock *r, const SdclTensor *x, const SdclTensor *time,
                       GError **error)
{
  g_autoptr (SdclTensor) h1 = sdcl_group_norm (x, r->norm1.w, r->norm1.b, r->groups, r->eps, TRUE,
                                               error);
  if (!h1)
    return NULL;
  /* silu(temb) projected per channel, broadcast over the pixels: added
     where conv1 writes its output */
  g_autoptr (SdclTensor) t = time && r->time.w ? sdcl_linear (time, r->time.w, r->time.b, error)
                                               : NULL;
  g_autoptr (SdclTensor) t4 = t ? sdcl_tensor_reshape (t, 1, 1, r->out, x->ne[3], error) : NULL;
  if (time && r->time.w && !t4)
    return NULL;
  g_autoptr (SdclTensor) h2 = t4 ? sdcl_conv2d_add (h1, r->conv1.w, r->conv1.b, 1, 1,
                                                    SDCL_CONV_AUTO, t4, error)
                                 : sdcl_conv2d (h1, r->conv1.w, r->conv1.b, 1, 1, error);
  if (!h2)
    return NULL;
  g_clear_pointer (&h1, sdcl_tensor_free);
  g_autoptr (SdclTensor) h3 = sdcl_group_norm (h2, r->norm2.w, r->norm2.b, r->groups, r->eps, TRUE,
                                               error);
  if (!h3)
    return NULL;
  g_clear_pointer (&h2, sdcl_tensor_free);
  /* the residual is added where conv2 writes its output: into the
     shortcut's output, which becomes the block's, or reading x */
  if (r->shortcut.w)
    {
      g_autoptr (SdclTensor) s = sdcl_conv2d (x, r->shortcut.w, r->shortcut.b, 1, 0, error);
      if (!s || !sdcl_conv2d_add_into (h3, r->conv2.w, r->conv2.b, 1, 1, SDCL_CONV_AUTO, s, error))
        return NULL;
      return g_steal_pointer (&s);
    }
  if (x->dtype == SDCL_DTYPE_F32 && sdcl_tensor_is_contiguous (x))
    return sdcl_conv2d_add (h3, r->conv2.w, r->conv2.b, 1, 1, SDCL_CONV_AUTO, x, error);
  g_autoptr (SdclTensor) h4 = sdcl_conv2d (h3, r->conv2.w, r->conv2.b, 1, 1, error);
  if (!h4 || !sdcl_binary_into (h4, x, SDCL_BINARY_ADD, error))
    return NULL;
  return g_steal_pointer (&h4);
}

/* ---- layout helpers ------------------------------------------------------------- */

/* [W, H, C, B] image -> [C, W·H, B] token view (strided, no copy). */
SdclTensor *
sdcl_image_to_tokens (const SdclTensor *x, GError **error)
{
  g_autoptr (SdclTensor) flat = sdcl_tensor_reshape (x, x->ne[0] * x->ne[1], x->ne[2], x->ne[3], 1,
                                                     error);
  const gint perm[4] = { 1, 0, 2, 3 };
  return flat ? sdcl_permute (flat, perm, error) : NULL;
}

/* residual [W, H, C, B] + tokens [C, W·H, B] back in image layout. */
SdclTensor *
sdcl_add_tokens_to_image (const SdclTensor *residual, const SdclTensor *tokens, GError **error)
{
  const gint64 W = residual->ne[0], H = residual->ne[1], C = residual->ne[2], B = residual->ne[3];
  const gint perm[4] = { 1, 0, 2, 3 };
  g_autoptr (SdclTensor) t = sdcl_permute (tokens, perm, error);   /* [W·H, C, B] view */
  g_autoptr (SdclTensor) r = t ? sdcl_tensor_reshape (residual, W * H, C, B, 1, error) : NULL;
  g_autoptr (SdclTensor) sum = r ? sdcl_binary (r, t, SDCL_BINARY_ADD, error) : NULL;
  return sum ? sdcl_tensor_reshape (sum, W, H, C, B, error) : NULL;
}

/* x + f(x) for a residual stream; x is replaced, fx consumed. */
gboolean
sdcl_residual (SdclTensor **x, SdclTensor *fx, GError **error)
{
  if (!fx)
    return FALSE;
  SdclTensor *sum = sdcl_binary (*x, fx, SDCL_BINARY_ADD, error);
  sdcl_tensor_free (fx);
  if (!sum)
    return FALSE;
  sdcl_tensor_free (*x);
  *x = sum;
  return TRUE;
}

/* Replaces *x with f's result (consumed); FALSE when it is NULL. */
static gboolean
step (SdclTensor **x, SdclTensor *fx)
{
  if (!fx)
    return FALSE;
  sdcl_tensor_free (*x);
  *x = fx;
  return TRUE;
}

/* ---- spatial transformer (diffusers' Transformer2DModel, one block) --------- */

typedef struct
{
  gint      channels, heads, groups;
  SdclLayer norm;          /* group norm [C] */
  SdclLayer proj_in;       /* [C, C] (a 1×1 conv in SD 1.x files) */
  SdclLayer ln1, qkv, out1;/* self-attention, q/k/v stacked [3C, C] */
  SdclLayer ln2, q2, kv2, out2; /* cross-attention: q [C, C], k/v [2C, ctx] */
  SdclLayer ln3, ff1, ff2; /* GEGLU [8C, C], [C, 4C] */
  SdclLayer proj_out;
} Transformer;

static void
transformer_clear (Transformer *t)
{
  SdclLayer *all[] = { &t->norm, &t->proj_in, &t->ln1, &t->qkv, &t->out1, &t->ln2, &t->q2,
                       &t->kv2, &t->out2, &t->ln3, &t->ff1, &t->ff2, &t->proj_out };
  for (guint i = 0; i < G_N_ELEMENTS (all); i++)
    sdcl_layer_clear (all[i]);
}

static gboolean
transformer_load (SdclWeights *w, Transformer *t, const gchar *prefix, gint C, gint heads,
                  gint ctx, gint groups, GError **error)
{
  t->channels = C;
  t->groups = groups;
  t->heads = heads;
  g_autofree gchar *norm = g_strconcat (prefix, "norm.", NULL);
  g_autofree gchar *proj_in = g_strconcat (prefix, "proj_in.", NULL);
  g_autofree gchar *proj_out = g_strconcat (prefix, "proj_out.", NULL);
  g_autofree gchar *b = g_strconcat (prefix, "transformer_blocks.0.", NULL);
#define B(var, s) g_autofree gchar *var = g_strconcat (b, s, NULL)
  B (ln1, "norm1.");
  B (ln2, "norm2.");
  B (ln3, "norm3.");
  B (q1, "attn1.to_q.");
  B (k1, "attn1.to_k.");
  B (v1, "attn1.to_v.");
  B (o1, "attn1.to_out.0.");
  B (q2, "attn2.to_q.");
  B (k2, "attn2.to_k.");
  B (v2, "attn2.to_v.");
  B (o2, "attn2.to_out.0.");
  B (ff1, "ff.net.0.proj.");
  B (ff2, "ff.net.2.");
#undef B
  const gchar *qkv[] = { q1, k1, v1 }, *kv[] = { k2, v2 };
  return sdcl_weights_layer (w, &t->norm, SDCL_LAYER_NORM, norm, C, 0, TRUE, error)
         && sdcl_weights_layer (w, &t->proj_in, SDCL_LAYER_LINEAR, proj_in, C, C, TRUE, error)
         && sdcl_weights_layer (w, &t->ln1, SDCL_LAYER_NORM, ln1, C, 0, TRUE, error)
         && sdcl_weights_fused (w, &t->qkv, qkv, 3, C, C, FALSE, error)
         && sdcl_weights_layer (w, &t->out1, SDCL_LAYER_LINEAR, o1, C, C, TRUE, error)
         && sdcl_weights_layer (w, &t->ln2, SDCL_LAYER_NORM, ln2, C, 0, TRUE, error)
         && sdcl_weights_layer (w, &t->q2, SDCL_LAYER_LINEAR, q2, C, C, FALSE, error)
         && sdcl_weights_fused (w, &t->kv2, kv, 2, C, ctx, FALSE, error)
         && sdcl_weights_layer (w, &t->out2, SDCL_LAYER_LINEAR, o2, C, C, TRUE, error)
         && sdcl_weights_layer (w, &t->ln3, SDCL_LAYER_NORM, ln3, C, 0, TRUE, error)
         && sdcl_weights_layer (w, &t->ff1, SDCL_LAYER_LINEAR, ff1, 8 * C, C, TRUE, error)
         && sdcl_weights_layer (w, &t->ff2, SDCL_LAYER_LINEAR, ff2, C, 4 * C, TRUE, error)
         && sdcl_weights_layer (w, &t->proj_out, SDCL_LAYER_LINEAR, proj_out, C, C, TRUE, error);
}

/* Rows [off, off + n) of every token of a stacked projection, as a view. */
static SdclTensor *
slice_features (const SdclTensor *t, gint64 off, gint64 n, GError **error)
{
  const gint64 ne[4] = { n, t->ne[1], t->ne[2], t->ne[3] };
  return sdcl_tensor_view (t, ne, t->nb, off * sizeof (gfloat), error);
}

/* kv: the text's keys and values for this block (context · kv2ᵀ, see
 * SdclUnetText). With copies > 1, x is an input that each of `copies`
 * texts meets (CFG's two halves): everything before the cross-attention
 * runs once, then the tokens and the residual are repeated to the text's
 * batch. */
static SdclTensor *
transformer_forward (const Transformer *t, const SdclTensor *x, const SdclTensor *kv,
                     gint64 copies, GError **error)
{
  const gint64 C = t->channels;
  g_autoptr (SdclTensor) n = sdcl_group_norm (x, t->norm.w, t->norm.b, t->groups, 1e-6f, FALSE, error);
  g_autoptr (SdclTensor) tok = n ? sdcl_image_to_tokens (n, error) : NULL;
  g_autoptr (SdclTensor) h = tok ? sdcl_linear (tok, t->proj_in.w, t->proj_in.b, error) : NULL;
  if (!h)
    return NULL;
  g_clear_pointer (&n, sdcl_tensor_free);
  g_clear_pointer (&tok, sdcl_tensor_free);

  /* self-attention */
  {
    g_autoptr (SdclTensor) a = sdcl_layer_norm (h, t->ln1.w, t->ln1.b, 1e-5f, error);
    g_autoptr (SdclTensor) qkv = a ? sdcl_linear (a, t->qkv.w, NULL, error) : NULL;
    g_autoptr (SdclTensor) q = qkv ? slice_features (qkv, 0, C, error) : NULL;
    g_autoptr (SdclTensor) k = q ? slice_features (qkv, C, C, error) : NULL;
    g_autoptr (SdclTensor) v = k ? slice_features (qkv, 2 * C, C, error) : NULL;
    g_autoptr (SdclTensor) o = v ? sdcl_attention (q, k, v, t->heads, FALSE, error) : NULL;
    if (!o || !sdcl_linear_accumulate (o, t->out1.w, t->out1.b, h, error))
      return NULL;
  }
  g_autoptr (SdclTensor) x_all = NULL;
  if (copies > 1)
    {
      SdclTensor *all = sdcl_repeat (h, 2, copies, error);
      if (!step (&h, all) || !(x_all = sdcl_repeat (x, 3, copies, error)))
        return NULL;
      x = x_all;
    }
  /* cross-attention over the text */
  {
    g_autoptr (SdclTensor) a = sdcl_layer_norm (h, t->ln2.w, t->ln2.b, 1e-5f, error);
    g_autoptr (SdclTensor) q = a ? sdcl_linear (a, t->q2.w, NULL, error) : NULL;
    g_autoptr (SdclTensor) k = q ? slice_features (kv, 0, C, error) : NULL;
    g_autoptr (SdclTensor) v = k ? slice_features (kv, C, C, error) : NULL;
    g_autoptr (SdclTensor) o = v ? sdcl_attention (q, k, v, t->heads, FALSE, error) : NULL;
    if (!o || !sdcl_linear_accumulate (o, t->out2.w, t->out2.b, h, error))
      return NULL;
  }
  /* GEGLU feed-forward */
  {
    g_autoptr (SdclTensor) a = sdcl_layer_norm (h, t->ln3.w, t->ln3.b, 1e-5f, error);
    g_autoptr (SdclTensor) g = a ? sdcl_linear_geglu (a, t->ff1.w, t->ff1.b, error) : NULL;
    if (!g || !sdcl_linear_accumulate (g, t->ff2.w, t->ff2.b, h, error))
      return NULL;
  }
  g_autoptr (SdclTensor) out = sdcl_linear (h, t->proj_out.w, t->proj_out.b, error);
  return out ? sdcl_add_tokens_to_image (x, out, error) : NULL;
}

/* h through a transformer block; while *copies > 1 (the input not yet
 * repeated to the text's batch, see transformer_forward) the block repeats
 * it, and the time embedding with it. */
static gboolean
attend (SdclTensor **h, SdclTensor **temb, gint64 *copies, const Transformer *t,
        const SdclTensor *kv, GError **error)
{
  if (!step (h, transformer_forward (t, *h, kv, *copies, error)))
    return FALSE;
  if (*copies > 1 && !step (temb, sdcl_repeat (*temb, 1, *copies, error)))
    return FALSE;
  *copies = 1;
  return TRUE;
}

/* ---- the UNet ------------------------------------------------------------------ */

typedef struct
{
  SdclResBlock *res;        /* [layers_per_block] down, [layers_per_block + 1] up */
  Transformer  *attn;       /* same count, or NULL */
  SdclLayer     sample;     /* downsampler (stride-2 conv) or upsampler conv; w NULL if none */
} Level;

struct _SdclUnet
{
  SdclUnetConfig c;
  SdclLayer      time1, time2;   /* [4·ch0, ch0], [4·ch0, 4·ch0] */
  SdclLayer      conv_in;        /* [ch0, in, 3, 3] */
  Level          down[SDCL_MAX_LEVELS];
  SdclResBlock   mid_res[2];
  Transformer    mid_attn;
  Level          up[SDCL_MAX_LEVELS];
  SdclLayer      norm_out, conv_out;
  GArray        *timer;          /* SdclBlockTime, when timing blocks */
};

void
sdcl_unet_time_blocks (SdclUnet *u, GArray *times)
{
  u->timer = times;
}

/* With a timer set, waits for the device and records the time since the
 * last mark under `name` (a static string). */
static gboolean
mark (SdclUnet *u, SdclEngine *engine, gint64 *since, const gchar *name, gint level,
      GError **error)
{
  if (!u->timer)
    return TRUE;
  if (!sdcl_engine_finish (engine, error))
    return FALSE;
  const gint64 now = g_get_monotonic_time ();
  SdclBlockTime t = { name, level, (now - *since) / 1e6 };
  g_array_append_val (u->timer, t);
  *since = now;
  return TRUE;
}

static void
level_clear (Level *l, gint n)
{
  for (gint j = 0; l->res && j < n; j++)
    sdcl_resblock_clear (&l->res[j]);
  for (gint j = 0; l->attn && j < n; j++)
    transformer_clear (&l->attn[j]);
  g_free (l->res);
  g_free (l->attn);
  sdcl_layer_clear (&l->sample);
}

void
sdcl_unet_free (SdclUnet *u)
{
  if (!u)
    return;
  const gint n = u->c.layers_per_block;
  for (gint i = 0; i < u->c.n_levels; i++)
    {
      level_clear (&u->down[i], n);
      level_clear (&u->up[i], n + 1);
    }
  sdcl_resblock_clear (&u->mid_res[0]);
  sdcl_resblock_clear (&u->mid_res[1]);
  transformer_clear (&u->mid_attn);
  SdclLayer *all[] = { &u->time1, &u->time2, &u->conv_in, &u->norm_out, &u->conv_out };
  for (guint i = 0; i < G_N_ELEMENTS (all); i++)
    sdcl_layer_clear (all[i]);
  g_free (u);
}

SdclUnet *
sdcl_unet_load (SdclWeights *w, const SdclUnetConfig *c, const gchar *prefix, GError **error)
{
  g_autoptr (SdclUnet) u = g_new0 (SdclUnet, 1);
  u->c = *c;
  const gint L = c->n_levels, n = c->layers_per_block, ch0 = c->channels[0], T = 4 * ch0;
  const gint top = c->channels[L - 1];
  for (gint i = 0; i < L; i++)
    {
      u->down[i].res = g_new0 (SdclResBlock, n);
      u->up[i].res = g_new0 (SdclResBlock, n + 1);
      if (c->attention[i])
        u->down[i].attn = g_new0 (Transformer, n);
      if (c->attention[L - 1 - i])
        u->up[i].attn = g_new0 (Transformer, n + 1);
    }
#define NAME(...) (g_free (name), name = g_strdup_printf (__VA_ARGS__))
  g_autofree gchar *name = NULL;
  if (!sdcl_weights_layer (w, &u->time1, SDCL_LAYER_LINEAR, NAME ("%stime_embedding.linear_1.", prefix),
                           T, ch0, TRUE, error)
      || !sdcl_weights_layer (w, &u->time2, SDCL_LAYER_LINEAR, NAME ("%stime_embedding.linear_2.", prefix),
                              T, T, TRUE, error)
      || !sdcl_weights_layer (w, &u->conv_in, SDCL_LAYER_CONV3, NAME ("%sconv_in.", prefix), ch0,
                              c->in_channels, TRUE, error))
    return NULL;

  /* channels of the skip connections, in the order the down path makes them */
  gint skips[1 + SDCL_MAX_LEVELS * 17], n_skips = 0, ch = ch0;
  skips[n_skips++] = ch0;
  for (gint i = 0; i < L; i++)
    {
      Level *l = &u->down[i];
      for (gint j = 0; j < n; j++)
        {
          if (!sdcl_resblock_load (w, &l->res[j], NAME ("%sdown_blocks.%d.resnets.%d.", prefix, i, j),
                                   ch, c->channels[i], T, c->groups, c->eps, error))
            return NULL;
          ch = c->channels[i];
          if (l->attn && !transformer_load (w, &l->attn[j],
                                            NAME ("%sdown_blocks.%d.attentions.%d.", prefix, i, j),
                                            ch, c->heads[i], c->context_dim, c->groups, error))
            return NULL;
          skips[n_skips++] = ch;
        }
      if (i < L - 1)
        {
          if (!sdcl_weights_layer (w, &l->sample, SDCL_LAYER_CONV3,
                                   NAME ("%sdown_blocks.%d.downsamplers.0.conv.", prefix, i),
                                   ch, ch, TRUE, error))
            return NULL;
          skips[n_skips++] = ch;
        }
    }
  if (!sdcl_resblock_load (w, &u->mid_res[0], NAME ("%smid_block.resnets.0.", prefix), top, top, T,
                           c->groups, c->eps, error)
      || !transformer_load (w, &u->mid_attn, NAME ("%smid_block.attentions.0.", prefix), top,
                            c->heads[L - 1], c->context_dim, c->groups, error)
      || !sdcl_resblock_load (w, &u->mid_res[1], NAME ("%smid_block.resnets.1.", prefix), top, top, T,
                              c->groups, c->eps, error))
    return NULL;
  for (gint i = 0; i < L; i++)
    {
      Level *l = &u->up[i];
      const gint level = L - 1 - i, out = c->channels[level];
      for (gint j = 0; j <= n; j++)
        {
          const gint skip = skips[--n_skips];
          if (!sdcl_resblock_load (w, &l->res[j], NAME ("%sup_blocks.%d.resnets.%d.", prefix, i, j),
                                   ch + skip, out, T, c->groups, c->eps, error))
            return NULL;
          ch = out;
          if (l->attn && !transformer_load (w, &l->attn[j],
                                            NAME ("%sup_blocks.%d.attentions.%d.", prefix, i, j),
                                            ch, c->heads[level], c->context_dim, c->groups, error))
            return NULL;
        }
      if (i < L - 1
          && !sdcl_weights_layer (w, &l->sample, SDCL_LAYER_CONV3,
                                  NAME ("%sup_blocks.%d.upsamplers.0.conv.", prefix, i),
                                  ch, ch, TRUE, error))
        return NULL;
    }
  if (!sdcl_weights_layer (w, &u->norm_out, SDCL_LAYER_NORM, NAME ("%sconv_norm_out.", prefix),
                           ch0, 0, TRUE, error)
      || !sdcl_weights_layer (w, &u->conv_out, SDCL_LAYER_CONV3, NAME ("%sconv_out.", prefix),
                              c->out_channels, ch0, TRUE, error))
    return NULL;
#undef NAME
  return g_steal_pointer (&u);
}

/* ---- the text's keys and values ----------------------------------------------- */

struct _SdclUnetText
{
  const SdclUnet *unet;
  gint64          batch;
  GHashTable     *kv;       /* const Transformer * -> SdclTensor * [2C, S, B] */
};

void
sdcl_unet_text_free (SdclUnetText *text)
{
  if (!text)
    return;
  g_hash_table_unref (text->kv);
  g_free (text);
}

/* Every transformer of the UNet, in no particular order. */
static GPtrArray *
unet_transformers (const SdclUnet *u)
{
  GPtrArray *all = g_ptr_array_new ();
  const gint n = u->c.layers_per_block;
  for (gint i = 0; i < u->c.n_levels; i++)
    {
      for (gint j = 0; u->down[i].attn && j < n; j++)
        g_ptr_array_add (all, &u->down[i].attn[j]);
      for (gint j = 0; u->up[i].attn && j <= n; j++)
        g_ptr_array_add (all, &u->up[i].attn[j]);
    }
  g_ptr_array_add (all, (gpointer) &u->mid_attn);
  return all;
}

SdclUnetText *
sdcl_unet_text_new (SdclUnet *u, const SdclTensor *context, GError **error)
{
  if (context->ne[0] != u->c.context_dim || context->ne[3] != 1)
    {
      g_autofree gchar *d = sdcl_tensor_describe (context);
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE,
                   "UNet context %s: needs %d features", d, u->c.context_dim);
      return NULL;
    }
  g_autoptr (SdclUnetText) text = g_new0 (SdclUnetText, 1);
  text->unet = u;
  text->batch = context->ne[2];
  text->kv = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) sdcl_tensor_free);
  g_autoptr (GPtrArray) all = unet_transformers (u);
  for (guint i = 0; i < all->len; i++)
    {
      const Transformer *t = all->pdata[i];
      SdclTensor *kv = sdcl_linear (context, t->kv2.w, NULL, error);
      if (!kv)
        return NULL;
      g_hash_table_insert (text->kv, (gpointer) t, kv);
    }
  return g_steal_pointer (&text);
}

SdclTensor *
sdcl_unet_forward (SdclUnet *u, const SdclTensor *x, const gfloat *timesteps,
                   const SdclTensor *context, GError **error)
{
  if (x->ne[3] < 1 || context->ne[2] % x->ne[3] != 0)
    {
      g_autofree gchar *d = sdcl_tensor_describe (context);
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE,
                   "UNet context %s: needs %d features and a batch that is a multiple of %"
                   G_GINT64_FORMAT, d, u->c.context_dim, x->ne[3]);
      return NULL;
    }
  g_autoptr (SdclUnetText) text = sdcl_unet_text_new (u, context, error);
  return text ? sdcl_unet_forward_text (u, x, timesteps, text, error) : NULL;
}

SdclTensor *
sdcl_unet_forward_text (SdclUnet *u, const SdclTensor *x, const gfloat *timesteps,
                        const SdclUnetText *text, GError **error)
{
  const SdclUnetConfig *c = &u->c;
  const gint L = c->n_levels, n = c->layers_per_block;
  /* an input batch that the text's batch repeats (CFG's halves share
     their latents): the layers before the first cross-attention run once
     for all the copies */
  const gint64 B = x->ne[3];
  gint64 copies = B > 0 && text->batch % B == 0 ? text->batch / B : 0;
  if (x->ne[2] != c->in_channels)
    {
      g_autofree gchar *d = sdcl_tensor_describe (x);
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE,
                   "UNet input %s: needs %d channels", d, c->in_channels);
      return NULL;
    }
  if (text->unet != u || copies < 1)
    {
      if (text->unet != u)
        g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_ARGUMENT,
                     "UNet text: projected by another UNet");
      else
        g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_SHAPE,
                     "UNet text: projected for a batch of %" G_GINT64_FORMAT
                     ", not a multiple of the input's %" G_GINT64_FORMAT, text->batch, B);
      return NULL;
    }
#define KV(t) ((const SdclTensor *) g_hash_table_lookup (text->kv, (t)))

  /* time embedding, then silu once for every resnet's projection */
  g_autoptr (SdclTensor) temb = NULL;
  {
    g_autoptr (SdclTensor) e = sdcl_timestep_embedding (x->engine, timesteps, B, c->channels[0],
                                                        c->flip_sin_to_cos, c->freq_shift, error);
    g_autoptr (SdclTensor) t1 = e ? sdcl_linear (e, u->time1.w, u->time1.b, error) : NULL;
    g_autoptr (SdclTensor) t2 = t1 ? sdcl_unary (t1, SDCL_UNARY_SILU, error) : NULL;
    g_autoptr (SdclTensor) t3 = t2 ? sdcl_linear (t2, u->time2.w, u->time2.b, error) : NULL;
    temb = t3 ? sdcl_unary (t3, SDCL_UNARY_SILU, error) : NULL;
    if (!temb)
      return NULL;
  }

  gint64 since = g_get_monotonic_time ();
  if (!mark (u, x->engine, &since, "time embedding", -1, error))
    return NULL;
  g_autoptr (GPtrArray) skips = g_ptr_array_new_with_free_func ((GDestroyNotify) sdcl_tensor_free);
  g_autoptr (SdclTensor) h = sdcl_conv2d (x, u->conv_in.w, u->conv_in.b, 1, 1, error);
  if (!h || !mark (u, x->engine, &since, "conv in", -1, error))
    return NULL;
  g_ptr_array_add (skips, sdcl_tensor_view (h, h->ne, h->nb, 0, NULL));
  for (gint i = 0; i < L; i++)
    {
      const Level *l = &u->down[i];
      for (gint j = 0; j < n; j++)
        {
          if (!step (&h, sdcl_resblock_forward (&l->res[j], h, temb, error))
              || (l->attn && !attend (&h, &temb, &copies, &l->attn[j], KV (&l->attn[j]), error)))
            return NULL;
          g_ptr_array_add (skips, sdcl_tensor_view (h, h->ne, h->nb, 0, NULL));
        }
      if (l->sample.w)
        {
          if (!step (&h, sdcl_conv2d (h, l->sample.w, l->sample.b, 2, 1, error)))
            return NULL;
          g_ptr_array_add (skips, sdcl_tensor_view (h, h->ne, h->nb, 0, NULL));
        }
      if (!mark (u, x->engine, &since, "down", i, error))
        return NULL;
    }
  if (!step (&h, sdcl_resblock_forward (&u->mid_res[0], h, temb, error))
      || !attend (&h, &temb, &copies, &u->mid_attn, KV (&u->mid_attn), error)
      || !step (&h, sdcl_resblock_forward (&u->mid_res[1], h, temb, error))
      || !mark (u, x->engine, &since, "mid", -1, error))
    return NULL;
  for (gint i = 0; i < L; i++)
    {
      const Level *l = &u->up[i];
      for (gint j = 0; j <= n; j++)
        {
          /* a skip from before the text was met, in the text's batch */
          g_autoptr (SdclTensor) skip = g_ptr_array_steal_index (skips, skips->len - 1);
          if (skip->ne[3] != h->ne[3]
              && !step (&skip, sdcl_repeat (skip, 3, h->ne[3] / skip->ne[3], error)))
            return NULL;
          if (!step (&h, sdcl_concat (h, skip, 2, error))
              || !step (&h, sdcl_resblock_forward (&l->res[j], h, temb, error))
              || (l->attn && !attend (&h, &temb, &copies, &l->attn[j], KV (&l->attn[j]), error)))
            return NULL;
        }
      /* up to the size of the skip it meets next: odd sizes were rounded up
         on the way down, as diffusers' forward_upsample_size does */
      const SdclTensor *next = skips->len ? skips->pdata[skips->len - 1] : NULL;
      if (l->sample.w
          && (!step (&h, next ? sdcl_upsample_nearest (h, next->ne[0], next->ne[1], error)
                              : sdcl_upsample_nearest2x (h, error))
              || !step (&h, sdcl_conv2d (h, l->sample.w, l->sample.b, 1, 1, error))))
        return NULL;
      if (!mark (u, x->engine, &since, "up", i, error))
        return NULL;
    }
  if (!step (&h, sdcl_group_norm (h, u->norm_out.w, u->norm_out.b, c->groups, c->eps, TRUE, error))
      || !step (&h, sdcl_conv2d (h, u->conv_out.w, u->conv_out.b, 1, 1, error))
      || (copies > 1 && !step (&h, sdcl_repeat (h, 3, copies, error)))
      || !mark (u, x->engine, &since, "out", -1, error))
    return NULL;
#undef KV
  return g_steal_pointer (&h);
}
