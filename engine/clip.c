/* clip.c — the CLIP text transformer (transformers' CLIPTextModel): token
 * and position embeddings, pre-norm layers of causal self-attention and
 * MLP, final layer norm. SD 1.x uses ViT-L/14's (768 wide, 12 layers,
 * quick-GELU); the same code runs other widths and depths.
 */
#include "model.h"

typedef struct
{
  SdclLayer ln1;       /* [width] */
  SdclLayer qkv;       /* [3·width, width], q/k/v stacked */
  SdclLayer out;       /* [width, width] */
  SdclLayer ln2;
  SdclLayer fc1;       /* [ff, width] */
  SdclLayer fc2;       /* [width, ff] */
} ClipLayer;

struct _SdclClip
{
  SdclClipConfig c;
  SdclEngine    *engine;
  SdclTensor    *tokens;      /* [width, vocab] */
  SdclTensor    *positions;   /* [width, positions] */
  ClipLayer     *layers;      /* [c.layers] */
  SdclLayer      final_ln;
};

void
sdcl_clip_free (SdclClip *clip)
{
  if (!clip)
    return;
  g_clear_pointer (&clip->tokens, sdcl_tensor_free);
  g_clear_pointer (&clip->positions, sdcl_tensor_free);
  for (gint i = 0; clip->layers && i < clip->c.layers; i++)
    {
      ClipLayer *l = &clip->layers[i];
      SdclLayer *all[] = { &l->ln1, &l->qkv, &l->out, &l->ln2, &l->fc1, &l->fc2 };
      for (guint j = 0; j < G_N_ELEMENTS (all); j++)
        sdcl_layer_clear (all[j]);
    }
  g_free (clip->layers);
  sdcl_layer_clear (&clip->final_ln);
  g_free (clip);
}

SdclClip *
sdcl_clip_load (SdclWeights *w, const SdclClipConfig *c, const gchar *prefix, GError **error)
{
  g_autoptr (SdclClip) clip = g_new0 (SdclClip, 1);
  clip->c = *c;
  clip->engine = w->engine;
  clip->layers = g_new0 (ClipLayer, c->layers);
  const gint W = c->width;
  g_autofree gchar *tok = g_strconcat (prefix, "text_model.embeddings.token_embedding.weight", NULL);
  g_autofree gchar *pos = g_strconcat (prefix, "text_model.embeddings.position_embedding.weight",
                                       NULL);
  if (!sdcl_weights_table (w, &clip->tokens, tok, c->vocab, W, error)
      || !sdcl_weights_table (w, &clip->positions, pos, c->positions, W, error))
    return NULL;
  for (gint i = 0; i < c->layers; i++)
    {
      ClipLayer *l = &clip->layers[i];
      g_autofree gchar *p = g_strdup_printf ("%stext_model.encoder.layers.%d.", prefix, i);
      g_autofree gchar *q = g_strconcat (p, "self_attn.q_proj.", NULL);
      g_autofree gchar *k = g_strconcat (p, "self_attn.k_proj.", NULL);
      g_autofree gchar *v = g_strconcat (p, "self_attn.v_proj.", NULL);
      const gchar *qkv[] = { q, k, v };
      g_autofree gchar *o = g_strconcat (p, "self_attn.out_proj.", NULL);
      g_autofree gchar *ln1 = g_strconcat (p, "layer_norm1.", NULL);
      g_autofree gchar *ln2 = g_strconcat (p, "layer_norm2.", NULL);
      g_autofree gchar *fc1 = g_strconcat (p, "mlp.fc1.", NULL);
      g_autofree gchar *fc2 = g_strconcat (p, "mlp.fc2.", NULL);
      if (!sdcl_weights_layer (w, &l->ln1, SDCL_LAYER_NORM, ln1, W, 0, TRUE, error)
          || !sdcl_weights_fused (w, &l->qkv, qkv, 3, W, W, TRUE, error)
          || !sdcl_weights_layer (w, &l->out, SDCL_LAYER_LINEAR, o, W, W, TRUE, error)
          || !sdcl_weights_layer (w, &l->ln2, SDCL_LAYER_NORM, ln2, W, 0, TRUE, error)
          || !sdcl_weights_layer (w, &l->fc1, SDCL_LAYER_LINEAR, fc1, c->ff, W, TRUE, error)
          || !sdcl_weights_layer (w, &l->fc2, SDCL_LAYER_LINEAR, fc2, W, c->ff, TRUE, error))
        return NULL;
    }
  g_autofree gchar *fln = g_strconcat (prefix, "text_model.final_layer_norm.", NULL);
  if (!sdcl_weights_layer (w, &clip->final_ln, SDCL_LAYER_NORM, fln, W, 0, TRUE, error))
    return NULL;
  return g_steal_pointer (&clip);
}

static SdclTensor *
self_attention (SdclClip *clip, const ClipLayer *l, const SdclTensor *x, GError **error)
{
  const gint W = clip->c.width;
  g_autoptr (SdclTensor) h = sdcl_layer_norm (x, l->ln1.w, l->ln1.b, clip->c.eps, error);
  g_autoptr (SdclTensor) qkv = h ? sdcl_linear (h, l->qkv.w, l->qkv.b, error) : NULL;
  if (!qkv)
    return NULL;
  const gint64 ne[4] = { W, x->ne[1], x->ne[2], 1 };
  g_autoptr (SdclTensor) q = sdcl_tensor_view (qkv, ne, qkv->nb, 0, error);
  g_autoptr (SdclTensor) k = q ? sdcl_tensor_view (qkv, ne, qkv->nb, W * sizeof (gfloat), error) : NULL;
  g_autoptr (SdclTensor) v = k ? sdcl_tensor_view (qkv, ne, qkv->nb, 2 * W * sizeof (gfloat), error)
                               : NULL;
  g_autoptr (SdclTensor) a = v ? sdcl_attention (q, k, v, clip->c.heads, TRUE, error) : NULL;
  return a ? sdcl_linear (a, l->out.w, l->out.b, error) : NULL;
}

static SdclTensor *
mlp (SdclClip *clip, const ClipLayer *l, const SdclTensor *x, GError **error)
{
  g_autoptr (SdclTensor) h = sdcl_layer_norm (x, l->ln2.w, l->ln2.b, clip->c.eps, error);
  g_autoptr (SdclTensor) f = h ? sdcl_linear (h, l->fc1.w, l->fc1.b, error) : NULL;
  g_autoptr (SdclTensor) g = f ? sdcl_unary (f, clip->c.quick_gelu ? SDCL_UNARY_QUICK_GELU
                                                                   : SDCL_UNARY_GELU, error) : NULL;
  return g ? sdcl_linear (g, l->fc2.w, l->fc2.b, error) : NULL;
}

SdclTensor *
sdcl_clip_forward (SdclClip *clip, const gint32 *ids, gint batch, gint clip_skip, GError **error)
{
  const SdclClipConfig *c = &clip->c;
  if (clip_skip < 1 || clip_skip > c->layers)
    {
      g_set_error (error, SDCL_OPS_ERROR, SDCL_OPS_ERROR_ARGUMENT,
                   "clip skip %d is outside 1..%d", clip_skip, c->layers);
      return NULL;
    }
  const gint S = c->positions;
  g_autoptr (SdclTensor) e = sdcl_embedding (clip->tokens, ids, S * batch, error);
  g_autoptr (SdclTensor) e3 = e ? sdcl_tensor_reshape (e, c->width, S, batch, 1, error) : NULL;
  g_autoptr (SdclTensor) pos = e3 ? sdcl_contiguous (clip->positions, error) : NULL;
  g_autoptr (SdclTensor) x = pos ? sdcl_binary (e3, pos, SDCL_BINARY_ADD, error) : NULL;
  if (!x)
    return NULL;
  const gint used = c->layers - (clip_skip - 1);
  for (gint i = 0; i < used; i++)
    {
      const ClipLayer *l = &clip->layers[i];
      if (!sdcl_residual (&x, self_attention (clip, l, x, error), error)
          || !sdcl_residual (&x, mlp (clip, l, x, error), error))
        return NULL;
    }
  return sdcl_layer_norm (x, clip->final_ln.w, clip->final_ln.b, c->eps, error);
}

SdclTensor *
sdcl_clip_encode_chunks (SdclClip *clip, const gint32 *ids, const gfloat *weights, gint n_chunks,
                         gint clip_skip, GError **error)
{
  const gint S = clip->c.positions, W = clip->c.width;
  /* each chunk is encoded on its own: as one batch item each */
  g_autoptr (SdclTensor) h = sdcl_clip_forward (clip, ids, n_chunks, clip_skip, error);
  if (!h)
    return NULL;
  gboolean weighted = FALSE;
  for (gint i = 0; weights && i < S * n_chunks; i++)
    weighted = weighted || weights[i] != 1.0f;
  if (weighted)
    {
      /* sd-webui's emphasis: scale each token's hidden state by its weight,
       * then rescale the chunk so its mean is what it was */
      g_autofree gfloat *v = sdcl_tensor_read_f32 (h, error);
      if (!v)
        return NULL;
      for (gint c = 0; c < n_chunks; c++)
        {
          gfloat *z = v + (gsize) c * S * W;
          gdouble before = 0, after = 0;
          for (gint t = 0; t < S; t++)
            for (gint i = 0; i < W; i++)
              {
                before += z[t * W + i];
                z[t * W + i] *= weights[c * S + t];
                after += z[t * W + i];
              }
          if (after != 0)
            for (gint i = 0; i < S * W; i++)
              z[i] *= (gfloat) (before / after);
        }
      if (!sdcl_tensor_write_f32 (h, v, error))
        return NULL;
    }
  return sdcl_tensor_reshape (h, W, (gint64) S * n_chunks, 1, 1, error);
}
