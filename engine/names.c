/* names.c — the one mapping between the original single-file layout of SD
 * checkpoints (CompVis: model.diffusion_model.*, first_stage_model.*,
 * cond_stage_model.transformer.*) and the engine's names, which are
 * diffusers' with a part prefix. The reference is diffusers'
 * convert_ldm_unet_checkpoint / convert_ldm_vae_checkpoint.
 *
 * The table is a list of block prefixes (original <-> engine), made from
 * the architecture because block numbers depend on it, plus per-kind
 * renames inside a block. Both directions read the same list.
 */
#include "model.h"

#include <string.h>

typedef struct
{
  const gchar *original;
  const gchar *engine;
} Rename;

/* inside a UNet resnet block */
static const Rename unet_resnet[] = {
  { "in_layers.0.", "norm1." },
  { "in_layers.2.", "conv1." },
  { "emb_layers.1.", "time_emb_proj." },
  { "out_layers.0.", "norm2." },
  { "out_layers.3.", "conv2." },
  { "skip_connection.", "conv_shortcut." },
  { NULL, NULL },
};

/* inside a VAE resnet block */
static const Rename vae_resnet[] = {
  { "norm1.", "norm1." },
  { "conv1.", "conv1." },
  { "norm2.", "norm2." },
  { "conv2.", "conv2." },
  { "nin_shortcut.", "conv_shortcut." },
  { NULL, NULL },
};

/* inside the VAE's mid-block attention (1×1 convs in original files) */
static const Rename vae_attention[] = {
  { "norm.", "group_norm." },
  { "q.", "to_q." },
  { "k.", "to_k." },
  { "v.", "to_v." },
  { "proj_out.", "to_out.0." },
  { NULL, NULL },
};

typedef struct
{
  gchar        *original;   /* block prefix, ends with '.' */
  gchar        *engine;
  const Rename *inner;      /* NULL: the rest of the name is the same */
} Rule;

struct _SdclNameTable
{
  GArray *rules;            /* Rule */
};

static void
add (SdclNameTable *t, const Rename *inner, gchar *original, gchar *engine)
{
  Rule r = { original, engine, inner };
  g_array_append_val (t->rules, r);
}

static void
clear_rule (gpointer p)
{
  Rule *r = p;
  g_free (r->original);
  g_free (r->engine);
}

#define U "model.diffusion_model."

static void
add_unet (SdclNameTable *t, const SdclUnetConfig *c)
{
  const gint n = c->layers_per_block, L = c->n_levels;
  add (t, NULL, g_strdup (U "time_embed.0."), g_strdup ("unet.time_embedding.linear_1."));
  add (t, NULL, g_strdup (U "time_embed.2."), g_strdup ("unet.time_embedding.linear_2."));
  add (t, NULL, g_strdup (U "input_blocks.0.0."), g_strdup ("unet.conv_in."));
  add (t, NULL, g_strdup (U "out.0."), g_strdup ("unet.conv_norm_out."));
  add (t, NULL, g_strdup (U "out.2."), g_strdup ("unet.conv_out."));

  /* input_blocks: 1 + level·(n+1) + j; the (n+1)-th of a level downsamples */
  for (gint i = 0; i < L; i++)
    {
      for (gint j = 0; j < n; j++)
        {
          const gint k = 1 + i * (n + 1) + j;
          add (t, unet_resnet, g_strdup_printf (U "input_blocks.%d.0.", k),
               g_strdup_printf ("unet.down_blocks.%d.resnets.%d.", i, j));
          if (c->attention[i])
            add (t, NULL, g_strdup_printf (U "input_blocks.%d.1.", k),
                 g_strdup_printf ("unet.down_blocks.%d.attentions.%d.", i, j));
        }
      if (i < L - 1)
        add (t, NULL, g_strdup_printf (U "input_blocks.%d.0.op.", (i + 1) * (n + 1)),
             g_strdup_printf ("unet.down_blocks.%d.downsamplers.0.conv.", i));
    }

  add (t, unet_resnet, g_strdup (U "middle_block.0."), g_strdup ("unet.mid_block.resnets.0."));
  add (t, NULL, g_strdup (U "middle_block.1."), g_strdup ("unet.mid_block.attentions.0."));
  add (t, unet_resnet, g_strdup (U "middle_block.2."), g_strdup ("unet.mid_block.resnets.1."));

  /* output_blocks: level·(n+1) + j, n+1 per level; up level i mirrors
   * down level L-1-i; the last block of a level ends with the upsampler */
  for (gint i = 0; i < L; i++)
    {
      const gboolean attn = c->attention[L - 1 - i];
      for (gint j = 0; j <= n; j++)
        {
          const gint k = i * (n + 1) + j;
          add (t, unet_resnet, g_strdup_printf (U "output_blocks.%d.0.", k),
               g_strdup_printf ("unet.up_blocks.%d.resnets.%d.", i, j));
          if (attn)
            add (t, NULL, g_strdup_printf (U "output_blocks.%d.1.", k),
                 g_strdup_printf ("unet.up_blocks.%d.attentions.%d.", i, j));
        }
      if (i < L - 1)
        add (t, NULL, g_strdup_printf (U "output_blocks.%d.%d.conv.", i * (n + 1) + n, attn ? 2 : 1),
             g_strdup_printf ("unet.up_blocks.%d.upsamplers.0.conv.", i));
    }
}

static void
add_vae (SdclNameTable *t, const SdclVaeConfig *c, const gchar *p)
{
  const gint L = c->n_levels;
  static const gchar *same[] = { "encoder.conv_in.", "encoder.conv_out.", "decoder.conv_in.",
                                 "decoder.conv_out.", "quant_conv.", "post_quant_conv." };
  for (guint i = 0; i < G_N_ELEMENTS (same); i++)
    add (t, NULL, g_strconcat (p, same[i], NULL), g_strconcat ("vae.", same[i], NULL));
  static const gchar *coders[] = { "encoder", "decoder" };
  for (guint e = 0; e < 2; e++)
    {
      const gchar *x = coders[e];
      add (t, NULL, g_strdup_printf ("%s%s.norm_out.", p, x),
           g_strdup_printf ("vae.%s.conv_norm_out.", x));
      add (t, vae_resnet, g_strdup_printf ("%s%s.mid.block_1.", p, x),
           g_strdup_printf ("vae.%s.mid_block.resnets.0.", x));
      add (t, vae_attention, g_strdup_printf ("%s%s.mid.attn_1.", p, x),
           g_strdup_printf ("vae.%s.mid_block.attentions.0.", x));
      add (t, vae_resnet, g_strdup_printf ("%s%s.mid.block_2.", p, x),
           g_strdup_printf ("vae.%s.mid_block.resnets.1.", x));
    }
  for (gint i = 0; i < L; i++)
    {
      for (gint j = 0; j < c->layers_per_block; j++)
        add (t, vae_resnet, g_strdup_printf ("%sencoder.down.%d.block.%d.", p, i, j),
             g_strdup_printf ("vae.encoder.down_blocks.%d.resnets.%d.", i, j));
      if (i < L - 1)
        add (t, NULL, g_strdup_printf ("%sencoder.down.%d.downsample.conv.", p, i),
             g_strdup_printf ("vae.encoder.down_blocks.%d.downsamplers.0.conv.", i));
      /* the decoder's original "up" blocks count from the latent end */
      for (gint j = 0; j <= c->layers_per_block; j++)
        add (t, vae_resnet, g_strdup_printf ("%sdecoder.up.%d.block.%d.", p, L - 1 - i, j),
             g_strdup_printf ("vae.decoder.up_blocks.%d.resnets.%d.", i, j));
      if (i < L - 1)
        add (t, NULL, g_strdup_printf ("%sdecoder.up.%d.upsample.conv.", p, L - 1 - i),
             g_strdup_printf ("vae.decoder.up_blocks.%d.upsamplers.0.conv.", i));
    }
}

SdclNameTable *
sdcl_name_table_new (const SdclUnetConfig *unet, const SdclVaeConfig *vae, const gchar *vae_prefix)
{
  SdclNameTable *t = g_new0 (SdclNameTable, 1);
  t->rules = g_array_new (FALSE, FALSE, sizeof (Rule));
  g_array_set_clear_func (t->rules, clear_rule);
  /* transformers' names inside; very old files lack the "text_model."
   * level, listed second so the reverse direction picks the first */
  add (t, NULL, g_strdup ("cond_stage_model.transformer.text_model."),
       g_strdup ("text_encoder.text_model."));
  add (t, NULL, g_strdup ("cond_stage_model.transformer."), g_strdup ("text_encoder.text_model."));
  if (unet)
    add_unet (t, unet);
  if (vae)
    add_vae (t, vae, vae_prefix ? vae_prefix : "first_stage_model.");
  return t;
}

void
sdcl_name_table_free (SdclNameTable *t)
{
  if (!t)
    return;
  g_array_unref (t->rules);
  g_free (t);
}

/* Maps `name` through the rule with the longest matching prefix on the
 * `from` side; the rest of the name goes through the rule's inner renames
 * (a name that matches none of them inside a renamed block is unknown). */
static gchar *
map (const SdclNameTable *t, const gchar *name, gboolean to_engine)
{
  const Rule *best = NULL;
  gsize best_len = 0;
  for (guint i = 0; i < t->rules->len; i++)
    {
      const Rule *r = &g_array_index (t->rules, Rule, i);
      const gchar *from = to_engine ? r->original : r->engine;
      const gsize len = strlen (from);
      if (len > best_len && strncmp (name, from, len) == 0)
        {
          best = r;
          best_len = len;
        }
    }
  if (!best)
    return NULL;
  const gchar *rest = name + best_len;
  const gchar *to = to_engine ? best->engine : best->original;
  if (!best->inner)
    return *rest ? g_strconcat (to, rest, NULL) : NULL;
  for (const Rename *r = best->inner; r->original; r++)
    {
      const gchar *a = to_engine ? r->original : r->engine;
      const gchar *b = to_engine ? r->engine : r->original;
      if (g_str_has_prefix (rest, a) && rest[strlen (a)])
        return g_strconcat (to, b, rest + strlen (a), NULL);
    }
  return NULL;
}

gchar *
sdcl_name_from_original (const SdclNameTable *t, const gchar *name)
{
  /* the position ids buffer is not a weight */
  if (g_str_has_suffix (name, "position_ids"))
    return NULL;
  return map (t, name, TRUE);
}

gchar *
sdcl_name_to_original (const SdclNameTable *t, const gchar *name)
{
  return map (t, name, FALSE);
}
