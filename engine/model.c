/* model.c — opening model files: a single .safetensors in the original SD
 * layout or a diffusers folder, plus an optional replacement VAE. Finds
 * the architecture (metadata, config.json, or the tensor shapes), tells
 * SD 1.x from the families we do not run yet by shapes rather than names,
 * checks every tensor before upload, and uploads the three parts.
 */
#include "model.h"

#include <string.h>

struct _SdclModel
{
  SdclEngine    *engine;
  SdclModelInfo *info;
  SdclModelPolicy policy;
  SdclClipConfig clip_config;
  SdclUnetConfig unet_config;
  SdclVaeConfig  vae_config;
  gchar         *scheduler_json;   /* the model's scheduler config, or NULL */
  SdclClip      *clip;             /* NULL while not on the device */
  SdclUnet      *unet;             /* NULL while not on the device */
  SdclVae       *vae;              /* always there; its halves come and go */
};

/* What opening a model found, before any upload. */
typedef struct
{
  SdclClipConfig clip;
  SdclUnetConfig unet;
  SdclVaeConfig  vae;
  SdclWeights   *weights;
  const gchar   *layout;
  gchar         *scheduler_json;
  guint          native_size;      /* from metadata, 0 when absent */
} Source;

static void
source_clear (Source *s)
{
  g_clear_pointer (&s->weights, sdcl_weights_free);
  g_clear_pointer (&s->scheduler_json, g_free);
}

static gboolean
fail (GError **error, SdclModelError code, const gchar *path, const gchar *fmt, ...) G_GNUC_PRINTF (4, 5);

static gboolean
fail (GError **error, SdclModelError code, const gchar *path, const gchar *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree gchar *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_autofree gchar *base = g_path_get_basename (path);
  g_set_error (error, SDCL_MODEL_ERROR, code, "%s: %s", base, msg);
  return FALSE;
}

/* ---- configs from JSON text --------------------------------------------------- */

typedef gboolean (*ConfigFromJson) (JsonObject *o, gpointer config, GError **error);

static gboolean
config_from_text (const gchar *text, gssize len, ConfigFromJson parse, gpointer config,
                  const gchar *path, const gchar *what, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) local = NULL;
  if (!json_parser_load_from_data (parser, text, len, &local))
    return fail (error, SDCL_MODEL_ERROR_CONFIG, path, "the %s is not valid JSON: %s", what,
                 local->message);
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    return fail (error, SDCL_MODEL_ERROR_CONFIG, path, "the %s is not a JSON object", what);
  if (!parse (json_node_get_object (root), config, &local))
    {
      g_autofree gchar *base = g_path_get_basename (path);
      g_set_error (error, SDCL_MODEL_ERROR, local->code, "%s: %s", base, local->message);
      return FALSE;
    }
  return TRUE;
}

static gboolean
config_from_file (const gchar *file, ConfigFromJson parse, gpointer config, GError **error)
{
  g_autofree gchar *text = NULL;
  gsize len;
  g_autoptr (GError) local = NULL;
  if (!g_file_get_contents (file, &text, &len, &local))
    return fail (error, SDCL_MODEL_ERROR_NOT_FOUND, file, "%s", local->message);
  return config_from_text (text, len, parse, config, file, "config", error);
}

/* ---- configs from tensor shapes (single files without metadata) ---------- */

static const SdclSafetensorsEntry *
need (const SdclSafetensors *st, const gchar *name, guint dims, GError **error)
{
  const SdclSafetensorsEntry *e = sdcl_safetensors_get (st, name);
  if (!e || e->n_dims != dims)
    {
      fail (error, SDCL_MODEL_ERROR_MISSING, sdcl_safetensors_name (st),
            "cannot tell the architecture: tensor '%s' is %s", name,
            e ? "of an unexpected rank" : "missing");
      return NULL;
    }
  return e;
}

static gboolean
has (const SdclSafetensors *st, const gchar *fmt, ...) G_GNUC_PRINTF (2, 3);

static gboolean
has (const SdclSafetensors *st, const gchar *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree gchar *name = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  return sdcl_safetensors_get (st, name) != NULL;
}

static gboolean
has_prefix (const SdclSafetensors *st, const gchar *prefix)
{
  for (guint i = 0; i < sdcl_safetensors_n_tensors (st); i++)
    if (g_str_has_prefix (sdcl_safetensors_nth (st, i)->name, prefix))
      return TRUE;
  return FALSE;
}

#define UP "model.diffusion_model."

static gboolean
unet_from_shapes (const SdclSafetensors *st, SdclUnetConfig *c, GError **error)
{
  memset (c, 0, sizeof *c);
  const SdclSafetensorsEntry *in = need (st, UP "input_blocks.0.0.weight", 4, error);
  const SdclSafetensorsEntry *out = in ? need (st, UP "out.2.weight", 4, error) : NULL;
  const SdclSafetensorsEntry *k = out ? need (st, UP "middle_block.1.transformer_blocks.0.attn2.to_k.weight",
                                              2, error) : NULL;
  const SdclSafetensorsEntry *pin = k ? sdcl_safetensors_get (st, UP "middle_block.1.proj_in.weight")
                                      : NULL;
  if (!k)
    return FALSE;
  c->in_channels = in->shape[1];
  c->out_channels = out->shape[0];
  c->context_dim = k->shape[1];
  c->linear_projection = pin && pin->n_dims == 2;
  c->groups = 32;
  c->eps = 1e-5f;
  c->flip_sin_to_cos = TRUE;
  c->sample_size = 64;
  gint level = 0, count = 0;
  for (gint b = 1; level < SDCL_MAX_LEVELS; b++)
    {
      if (has (st, UP "input_blocks.%d.0.op.weight", b))
        {
          if (level == 0)
            c->layers_per_block = count;
          level++;
          continue;
        }
      g_autofree gchar *conv = g_strdup_printf (UP "input_blocks.%d.0.in_layers.2.weight", b);
      const SdclSafetensorsEntry *e = sdcl_safetensors_get (st, conv);
      if (!e || e->n_dims != 4)
        break;
      c->channels[level] = e->shape[0];
      c->attention[level] = c->attention[level] || has (st, UP "input_blocks.%d.1.proj_in.weight", b);
      count++;
    }
  c->n_levels = level + 1;
  if (c->layers_per_block == 0)
    c->layers_per_block = count;
  if (c->n_levels > SDCL_MAX_LEVELS - 1 || c->channels[0] == 0 || c->layers_per_block == 0)
    return fail (error, SDCL_MODEL_ERROR_CONFIG, sdcl_safetensors_name (st),
                 "cannot tell the UNet's levels from its input blocks");
  /* heads leave no trace in the shapes: SD 1.x has 8 everywhere (SD 2.x's
   * 64-wide heads are refused before this matters) */
  for (gint i = 0; i < c->n_levels; i++)
    c->heads[i] = 8;
  return TRUE;
}

static gboolean
vae_from_shapes (const SdclSafetensors *st, const gchar *p, SdclVaeConfig *c, GError **error)
{
  memset (c, 0, sizeof *c);
  g_autofree gchar *conv_in = g_strconcat (p, "encoder.conv_in.weight", NULL);
  g_autofree gchar *pq = g_strconcat (p, "post_quant_conv.weight", NULL);
  const SdclSafetensorsEntry *in = need (st, conv_in, 4, error);
  const SdclSafetensorsEntry *post = in ? need (st, pq, 4, error) : NULL;
  if (!post)
    return FALSE;
  c->image_channels = in->shape[1];
  c->latent_channels = post->shape[0];
  c->groups = 32;
  c->scaling_factor = 0.18215f;
  c->sample_size = 512;
  c->mid_attention = has (st, "%sencoder.mid.attn_1.q.weight", p);
  for (gint i = 0; i < SDCL_MAX_LEVELS; i++)
    {
      g_autofree gchar *name = g_strdup_printf ("%sencoder.down.%d.block.0.conv1.weight", p, i);
      const SdclSafetensorsEntry *e = sdcl_safetensors_get (st, name);
      if (!e || e->n_dims != 4)
        break;
      c->channels[i] = e->shape[0];
      c->n_levels = i + 1;
    }
  while (has (st, "%sencoder.down.0.block.%d.conv1.weight", p, c->layers_per_block))
    c->layers_per_block++;
  if (c->n_levels == 0 || c->layers_per_block == 0)
    return fail (error, SDCL_MODEL_ERROR_CONFIG, sdcl_safetensors_name (st),
                 "cannot tell the VAE's levels from its encoder blocks");
  return TRUE;
}

static gboolean
clip_from_shapes (const SdclSafetensors *st, const gchar *p, SdclClipConfig *c, GError **error)
{
  memset (c, 0, sizeof *c);
  g_autofree gchar *tok = g_strconcat (p, "embeddings.token_embedding.weight", NULL);
  g_autofree gchar *pos = g_strconcat (p, "embeddings.position_embedding.weight", NULL);
  g_autofree gchar *fc1 = g_strconcat (p, "encoder.layers.0.mlp.fc1.weight", NULL);
  const SdclSafetensorsEntry *t = need (st, tok, 2, error);
  const SdclSafetensorsEntry *ps = t ? need (st, pos, 2, error) : NULL;
  const SdclSafetensorsEntry *f = ps ? need (st, fc1, 2, error) : NULL;
  if (!f)
    return FALSE;
  c->vocab = t->shape[0];
  c->width = t->shape[1];
  c->positions = ps->shape[0];
  c->ff = f->shape[0];
  c->heads = MAX (1, c->width / 64);      /* CLIP's heads are 64 wide */
  c->quick_gelu = TRUE;
  c->eps = 1e-5f;
  while (has (st, "%sencoder.layers.%d.mlp.fc1.weight", p, c->layers))
    c->layers++;
  return TRUE;
}

/* ---- what kind of file ------------------------------------------------------------ */

/* Refuses the families we recognise but do not run, by what they contain. */
static gboolean
refuse_other_families (const SdclSafetensors *st, const gchar *path, GError **error)
{
  if (has_prefix (st, "conditioner.embedders.") || has (st, UP "label_emb.0.0.weight"))
    return !fail (error, SDCL_MODEL_ERROR_UNSUPPORTED, path,
                  "this is an SDXL checkpoint (two text encoders and a size embedding); "
                  "sdcl runs SD 1.x models only for now");
  if (has_prefix (st, "cond_stage_model.model."))
    return !fail (error, SDCL_MODEL_ERROR_UNSUPPORTED, path,
                  "this is an SD 2.x checkpoint (OpenCLIP ViT-H text encoder, 1024 wide); "
                  "sdcl runs SD 1.x models only for now");
  return FALSE;
}

static gboolean
check_family (const SdclUnetConfig *u, const SdclClipConfig *t, const gchar *path, GError **error)
{
  if (u->context_dim == 1024 || t->width == 1024)
    return fail (error, SDCL_MODEL_ERROR_UNSUPPORTED, path,
                 "this is an SD 2.x model (1024-wide text encoder); sdcl runs SD 1.x models "
                 "only for now");
  if (u->context_dim == 2048)
    return fail (error, SDCL_MODEL_ERROR_UNSUPPORTED, path,
                 "this is an SDXL model (2048-wide text context); sdcl runs SD 1.x models "
                 "only for now");
  if (u->context_dim != t->width)
    return fail (error, SDCL_MODEL_ERROR_CONFIG, path,
                 "the UNet's cross-attention expects %d-wide text but the text encoder is "
                 "%d wide", u->context_dim, t->width);
  if (u->in_channels == 8)
    return fail (error, SDCL_MODEL_ERROR_UNSUPPORTED, path,
                 "this is an instruct-pix2pix model (8 input channels), which sdcl does not run");
  if (u->in_channels != 4 && u->in_channels != 9)
    return fail (error, SDCL_MODEL_ERROR_UNSUPPORTED, path,
                 "the UNet takes %d input channels; sdcl runs 4 (text-to-image) and 9 "
                 "(inpainting)", u->in_channels);
  return TRUE;
}

/* ---- the two layouts ---------------------------------------------------------------- */

static gchar *
rename_original (const gchar *name, gpointer table)
{
  return sdcl_name_from_original (table, name);
}

/* Prefix for a diffusers part file; old diffusers VAE attention names
 * (query/key/value/proj_attn) become today's, and a text model saved
 * without "text_model." gets it. */
static gchar *
rename_diffusers (const gchar *name, gpointer prefix)
{
  static const gchar *old[][2] = {
    { ".attentions.0.query.", ".attentions.0.to_q." },
    { ".attentions.0.key.", ".attentions.0.to_k." },
    { ".attentions.0.value.", ".attentions.0.to_v." },
    { ".attentions.0.proj_attn.", ".attentions.0.to_out.0." },
  };
  if (g_str_has_suffix (name, "position_ids"))
    return NULL;
  if (g_str_equal (prefix, "vae."))
    for (guint i = 0; i < G_N_ELEMENTS (old); i++)
      {
        const gchar *at = strstr (name, old[i][0]);
        if (at)
          {
            g_autofree gchar *head = g_strndup (name, at - name);
            return g_strconcat (prefix, head, old[i][1], at + strlen (old[i][0]), NULL);
          }
      }
  /* transformers 5 saves the text model without its "text_model." level */
  if (g_str_equal (prefix, "text_encoder.") && !g_str_has_prefix (name, "text_model."))
    return g_strconcat (prefix, "text_model.", name, NULL);
  return g_strconcat (prefix, name, NULL);
}

static gboolean
metadata_config (const SdclSafetensors *st, const gchar *key, ConfigFromJson parse,
                 gpointer config, const gchar *path, gboolean *found, GError **error)
{
  const gchar *text = sdcl_safetensors_metadata (st, key);
  *found = text != NULL;
  if (!text)
    return TRUE;
  g_autofree gchar *what = g_strdup_printf ("metadata '%s'", key);
  return config_from_text (text, -1, parse, config, path, what, error);
}

static gboolean
open_single_file (const gchar *path, Source *src, GError **error)
{
  SdclSafetensors *st = sdcl_safetensors_open (path, error);
  if (!st)
    return FALSE;
  src->weights = sdcl_weights_new ();
  /* owned by the weights from here, so every return below frees it */
  g_ptr_array_add (src->weights->files, st);
  if (refuse_other_families (st, path, error))
    return FALSE;
  if (!has (st, UP "input_blocks.0.0.weight"))
    {
      if (has_prefix (st, "encoder.") || has_prefix (st, "decoder."))
        return fail (error, SDCL_MODEL_ERROR_UNSUPPORTED, path,
                     "this is a VAE on its own, not a whole model; give it as the VAE "
                     "(sdcl --vae) next to a model");
      return fail (error, SDCL_MODEL_ERROR_MISSING, path,
                   "no UNet tensors (model.diffusion_model.*): not a Stable Diffusion checkpoint "
                   "in the original layout");
    }
  const gchar *clip_prefix = has (st, "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight")
                             ? "cond_stage_model.transformer.text_model."
                             : "cond_stage_model.transformer.";
  gboolean found;
  if (!metadata_config (st, "sdcl.unet_config", (ConfigFromJson) sdcl_unet_config_from_json,
                        &src->unet, path, &found, error)
      || (!found && !unet_from_shapes (st, &src->unet, error))
      || !metadata_config (st, "sdcl.vae_config", (ConfigFromJson) sdcl_vae_config_from_json,
                           &src->vae, path, &found, error)
      || (!found && !vae_from_shapes (st, "first_stage_model.", &src->vae, error))
      || !metadata_config (st, "sdcl.text_encoder_config",
                           (ConfigFromJson) sdcl_clip_config_from_json, &src->clip, path, &found,
                           error)
      || (!found && !clip_from_shapes (st, clip_prefix, &src->clip, error)))
    return FALSE;
  src->scheduler_json = g_strdup (sdcl_safetensors_metadata (st, "sdcl.scheduler_config"));
  const gchar *native = sdcl_safetensors_metadata (st, "sdcl.native_size");
  if (native)
    src->native_size = g_ascii_strtoull (native, NULL, 10);
  src->layout = "single file";

  g_ptr_array_steal_index (src->weights->files, 0);
  SdclNameTable *table = sdcl_name_table_new (&src->unet, &src->vae, "first_stage_model.");
  sdcl_weights_add_file (src->weights, st, rename_original, table);
  src->weights->names = table;
  return TRUE;
}

/* The weights file of a diffusers part folder: the plain or the .fp16
 * variant; a folder with only pickled .bin weights is refused. */
static gchar *
part_weights (const gchar *dir, const gchar *part, const gchar *stem, GError **error)
{
  const gchar *variants[] = { "", ".fp16" };
  for (guint i = 0; i < G_N_ELEMENTS (variants); i++)
    {
      g_autofree gchar *file = g_strdup_printf ("%s%s.safetensors", stem, variants[i]);
      gchar *path = g_build_filename (dir, part, file, NULL);
      if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
        return path;
      g_free (path);
    }
  g_autofree gchar *bin = g_strdup_printf ("%s.bin", stem);
  g_autofree gchar *bin_path = g_build_filename (dir, part, bin, NULL);
  g_autofree gchar *where = g_build_filename (dir, part, NULL);
  if (g_file_test (bin_path, G_FILE_TEST_IS_REGULAR))
    fail (error, SDCL_MODEL_ERROR_UNSUPPORTED, where,
          "has only pickled PyTorch weights (%s); sdcl loads .safetensors only, because "
          "loading pickles can run arbitrary code. Save the model with "
          "save_pretrained(..., safe_serialization=True) to get %s.safetensors", bin, stem);
  else
    fail (error, SDCL_MODEL_ERROR_NOT_FOUND, where, "has no %s.safetensors", stem);
  return NULL;
}

static gboolean
add_part (Source *src, const gchar *dir, const gchar *part, const gchar *stem, const gchar *prefix,
          GError **error)
{
  g_autofree gchar *file = part_weights (dir, part, stem, error);
  SdclSafetensors *st = file ? sdcl_safetensors_open (file, error) : NULL;
  if (!st)
    return FALSE;
  sdcl_weights_add_file (src->weights, st, rename_diffusers, (gpointer) prefix);
  return TRUE;
}

static gboolean
open_folder (const gchar *dir, Source *src, GError **error)
{
  g_autofree gchar *xl = g_build_filename (dir, "text_encoder_2", NULL);
  if (g_file_test (xl, G_FILE_TEST_IS_DIR))
    return fail (error, SDCL_MODEL_ERROR_UNSUPPORTED, dir,
                 "this is an SDXL model (it has text_encoder_2); sdcl runs SD 1.x models only "
                 "for now");
  g_autofree gchar *uc = g_build_filename (dir, "unet", "config.json", NULL);
  g_autofree gchar *vc = g_build_filename (dir, "vae", "config.json", NULL);
  g_autofree gchar *tc = g_build_filename (dir, "text_encoder", "config.json", NULL);
  g_autofree gchar *sc = g_build_filename (dir, "scheduler", "scheduler_config.json", NULL);
  if (!g_file_test (uc, G_FILE_TEST_EXISTS))
    return fail (error, SDCL_MODEL_ERROR_NOT_FOUND, dir,
                 "not a diffusers model folder (no unet/config.json)");
  if (!config_from_file (uc, (ConfigFromJson) sdcl_unet_config_from_json, &src->unet, error)
      || !config_from_file (vc, (ConfigFromJson) sdcl_vae_config_from_json, &src->vae, error)
      || !config_from_file (tc, (ConfigFromJson) sdcl_clip_config_from_json, &src->clip, error))
    return FALSE;
  g_file_get_contents (sc, &src->scheduler_json, NULL, NULL);
  src->layout = "diffusers folder";
  src->weights = sdcl_weights_new ();
  return add_part (src, dir, "unet", "diffusion_pytorch_model", "unet.", error)
         && add_part (src, dir, "vae", "diffusion_pytorch_model", "vae.", error)
         && add_part (src, dir, "text_encoder", "model", "text_encoder.", error);
}

/* A replacement VAE: a diffusers vae/ folder, or one file with the
 * original names (standalone "encoder.*" or "first_stage_model.*") or
 * diffusers' names. */
static gboolean
open_vae (const gchar *path, Source *src, GError **error)
{
  SdclVaeConfig c;
  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      g_autofree gchar *cfg = g_build_filename (path, "config.json", NULL);
      g_autofree gchar *file = g_build_filename (path, "diffusion_pytorch_model.safetensors", NULL);
      if (!config_from_file (cfg, (ConfigFromJson) sdcl_vae_config_from_json, &c, error))
        return FALSE;
      SdclSafetensors *st = sdcl_safetensors_open (file, error);
      if (!st)
        return FALSE;
      sdcl_weights_forget (src->weights, "vae.");
      sdcl_weights_add_file (src->weights, st, rename_diffusers, (gpointer) "vae.");
      src->vae = c;
      return TRUE;
    }
  g_autoptr (SdclSafetensors) st = sdcl_safetensors_open (path, error);
  if (!st)
    return FALSE;
  const gboolean diffusers = has (st, "encoder.down_blocks.0.resnets.0.conv1.weight")
                             || has (st, "decoder.up_blocks.0.resnets.0.conv1.weight");
  const gchar *prefix = has_prefix (st, "first_stage_model.") ? "first_stage_model." : "";
  gboolean found;
  if (!metadata_config (st, "sdcl.vae_config", (ConfigFromJson) sdcl_vae_config_from_json, &c,
                        path, &found, error))
    return FALSE;
  if (!found && diffusers)
    return fail (error, SDCL_MODEL_ERROR_CONFIG, path,
                 "a VAE with diffusers' tensor names needs its config.json: give the folder "
                 "that holds both");
  if (!found && !vae_from_shapes (st, prefix, &c, error))
    return FALSE;
  sdcl_weights_forget (src->weights, "vae.");
  if (diffusers)
    sdcl_weights_add_file (src->weights, g_steal_pointer (&st), rename_diffusers, (gpointer) "vae.");
  else
    {
      g_autoptr (SdclNameTable) table = sdcl_name_table_new (NULL, &c, prefix);
      sdcl_weights_add_file (src->weights, g_steal_pointer (&st), rename_original, table);
    }
  src->vae = c;
  return TRUE;
}

static gboolean
open_source (const gchar *path, const gchar *vae_path, Source *src, GError **error)
{
  memset (src, 0, sizeof *src);
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    return fail (error, SDCL_MODEL_ERROR_NOT_FOUND, path, "no such file or folder");
  if (vae_path && !g_file_test (vae_path, G_FILE_TEST_EXISTS))
    return fail (error, SDCL_MODEL_ERROR_NOT_FOUND, vae_path, "no such VAE file or folder");
  const gboolean ok = g_file_test (path, G_FILE_TEST_IS_DIR) ? open_folder (path, src, error)
                                                             : open_single_file (path, src, error);
  return ok && check_family (&src->unet, &src->clip, path, error)
         && (!vae_path || open_vae (vae_path, src, error));
}

/* ---- parts ------------------------------------------------------------------------ */

/* Loads (or, with w->engine NULL, checks and counts) the three parts;
 * params and bytes (device) of each in the order text encoder, UNet, VAE. */
static gboolean
load_parts (Source *src, SdclClip **clip, SdclUnet **unet, SdclVae **vae, guint64 params[3],
            guint64 bytes[3], GError **error)
{
  SdclWeights *w = src->weights;
  guint64 before = w->params, bytes_before = w->device_bytes;
#define COUNT(i) (params[i] = w->params - before, bytes[i] = w->device_bytes - bytes_before, \
                  before = w->params, bytes_before = w->device_bytes)
  *clip = sdcl_clip_load (w, &src->clip, "text_encoder.", error);
  if (!*clip)
    return FALSE;
  COUNT (0);
  *unet = sdcl_unet_load (w, &src->unet, "unet.", error);
  if (!*unet)
    return FALSE;
  COUNT (1);
  *vae = sdcl_vae_load (w, &src->vae, "vae.", SDCL_VAE_ENCODER | SDCL_VAE_DECODER, error);
  if (!*vae)
    return FALSE;
  COUNT (2);
#undef COUNT
  return TRUE;
}

void
sdcl_model_info_free (SdclModelInfo *info)
{
  if (!info)
    return;
  g_free (info->path);
  g_free (info->file_dtypes);
  g_free (info->vae_path);
  g_free (info);
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar **) a, *(const gchar **) b);
}

/* Checks every tensor without a device and describes the model. */
static SdclModelInfo *
inspect_source (const gchar *path, const gchar *vae_path, Source *src, GError **error)
{
  if (!open_source (path, vae_path, src, error))
    return NULL;
  g_autoptr (SdclClip) clip = NULL;
  g_autoptr (SdclUnet) unet = NULL;
  g_autoptr (SdclVae) vae = NULL;
  guint64 params[3], bytes[3];
  g_autofree gchar *what = g_path_get_basename (path);
  if (!load_parts (src, &clip, &unet, &vae, params, bytes, error)
      || !sdcl_weights_check (src->weights, what, error))
    return NULL;

  SdclModelInfo *info = g_new0 (SdclModelInfo, 1);
  info->path = g_strdup (path);
  info->vae_path = g_strdup (vae_path);
  info->kind = src->unet.in_channels == 9 ? SDCL_MODEL_KIND_SD1_INPAINT : SDCL_MODEL_KIND_SD1;
  info->kind_name = info->kind == SDCL_MODEL_KIND_SD1 ? "SD 1.x" : "SD 1.x inpainting";
  info->layout = src->layout;
  g_autofree gpointer *keys = g_hash_table_get_keys_as_array (src->weights->dtypes, NULL);
  const guint n_keys = g_hash_table_size (src->weights->dtypes);
  qsort (keys, n_keys, sizeof *keys, compare_strings);
  info->file_dtypes = g_strjoinv (", ", (gchar **) keys);
  info->text_encoder_params = params[0];
  info->unet_params = params[1];
  info->vae_params = params[2];
  info->weight_bytes = src->weights->device_bytes;
  info->latent_factor = 1u << (src->vae.n_levels - 1);
  info->latent_channels = src->vae.latent_channels;
  info->native_size = src->native_size ? src->native_size
                                       : (guint) src->unet.sample_size * info->latent_factor;
  info->unet_in_channels = src->unet.in_channels;
  info->text_width = src->clip.width;
  info->text_layers = src->clip.layers;
  /* the widest moments of a run at native size: the UNet at batch 2 (CFG,
   * skip connections, weights widened per call) and the VAE decoder at
   * full resolution; factors from the device peaks bench-models measures
   * for SD 1.5 (UNet 808 MiB, VAE 2.4 GiB above the weights) */
  const guint64 s = info->native_size, l = s / info->latent_factor;
  const guint64 unet_work = 2 * (guint64) src->unet.channels[0] * l * l * 4 * 80;
  const guint64 vae_work = (guint64) src->vae.channels[0] * s * s * 4 * 19;
  info->work_bytes = MAX (unet_work, vae_work);
  /* one part at a time: the UNet with its work, or the VAE (both halves,
     an upper bound) with the decoder's */
  info->part_peak_bytes = MAX (bytes[0], MAX (bytes[1] + unet_work, bytes[2] + vae_work));
  return info;
}

SdclModelInfo *
sdcl_model_inspect (const gchar *path, const gchar *vae_path, GError **error)
{
  Source src;
  SdclModelInfo *info = inspect_source (path, vae_path, &src, error);
  source_clear (&src);
  return info;
}

void
sdcl_model_free (SdclModel *m)
{
  if (!m)
    return;
  sdcl_model_info_free (m->info);
  sdcl_clip_free (m->clip);
  sdcl_unet_free (m->unet);
  sdcl_vae_free (m->vae);
  g_free (m->scheduler_json);
  g_free (m);
}

SdclModel *
sdcl_model_load (SdclEngine *engine, const gchar *path, const gchar *vae_path, GError **error)
{
  return sdcl_model_load_with_policy (engine, path, vae_path, SDCL_MODEL_RESIDENT, error);
}

SdclModel *
sdcl_model_load_with_policy (SdclEngine *engine, const gchar *path, const gchar *vae_path,
                             SdclModelPolicy policy, GError **error)
{
  Source src;
  g_autoptr (SdclModel) m = g_new0 (SdclModel, 1);
  m->engine = engine;
  m->policy = policy;
  m->info = inspect_source (path, vae_path, &src, error);
  if (m->info)
    {
      src.weights->engine = engine;
      guint64 params[3], bytes[3];
      if (policy == SDCL_MODEL_ON_DEMAND)
        m->vae = sdcl_vae_load (src.weights, &src.vae, "vae.", 0, error);
      else if (!load_parts (&src, &m->clip, &m->unet, &m->vae, params, bytes, error))
        g_clear_pointer (&m->info, sdcl_model_info_free);
    }
  m->clip_config = src.clip;
  m->unet_config = src.unet;
  m->vae_config = src.vae;
  m->scheduler_json = g_steal_pointer (&src.scheduler_json);
  /* the files are unmapped here: everything lives on the device now */
  source_clear (&src);
  if (!m->info)
    return NULL;
  return g_steal_pointer (&m);
}

/* The VAE halves among a model's parts. */
static SdclVaeParts
vae_halves (SdclModelParts parts)
{
  return (parts & SDCL_PART_VAE_ENCODER ? SDCL_VAE_ENCODER : 0)
         | (parts & SDCL_PART_VAE_DECODER ? SDCL_VAE_DECODER : 0);
}

static SdclModelParts
resident_parts (SdclModel *m)
{
  const SdclVaeParts v = sdcl_vae_parts (m->vae);
  return (m->clip ? SDCL_PART_TEXT_ENCODER : 0) | (m->unet ? SDCL_PART_UNET : 0)
         | (v & SDCL_VAE_ENCODER ? SDCL_PART_VAE_ENCODER : 0)
         | (v & SDCL_VAE_DECODER ? SDCL_PART_VAE_DECODER : 0);
}

gboolean
sdcl_model_acquire (SdclModel *m, SdclModelParts parts, GError **error)
{
  const SdclModelParts missing = parts & ~resident_parts (m);
  if (!missing)
    return TRUE;
  /* the files again, as they are now: they must still hold the model
     that was loaded */
  Source src;
  gboolean ok = open_source (m->info->path, m->info->vae_path, &src, error);
  if (ok && (memcmp (&src.clip, &m->clip_config, sizeof src.clip) != 0
             || memcmp (&src.unet, &m->unet_config, sizeof src.unet) != 0
             || memcmp (&src.vae, &m->vae_config, sizeof src.vae) != 0))
    ok = fail (error, SDCL_MODEL_ERROR_UNSUPPORTED, m->info->path,
               "the model changed on disk since it was loaded; load it again");
  if (ok)
    {
      src.weights->engine = m->engine;
      const SdclVaeParts halves = vae_halves (missing);
      if (missing & SDCL_PART_TEXT_ENCODER)
        ok = (m->clip = sdcl_clip_load (src.weights, &src.clip, "text_encoder.", error)) != NULL;
      if (ok && (missing & SDCL_PART_UNET))
        ok = (m->unet = sdcl_unet_load (src.weights, &src.unet, "unet.", error)) != NULL;
      if (ok && halves)
        ok = sdcl_vae_load_parts (m->vae, src.weights, "vae.", halves, error);
    }
  source_clear (&src);
  return ok;
}

void
sdcl_model_done (SdclModel *m, SdclModelParts parts)
{
  if (m->policy != SDCL_MODEL_ON_DEMAND || !(parts & resident_parts (m)))
    return;
  if (parts & SDCL_PART_TEXT_ENCODER)
    g_clear_pointer (&m->clip, sdcl_clip_free);
  if (parts & SDCL_PART_UNET)
    g_clear_pointer (&m->unet, sdcl_unet_free);
  sdcl_vae_release_parts (m->vae, vae_halves (parts));
  /* the weights' buffers went to the pool like any other: out of the
     process now, and the last part's activations with them */
  sdcl_engine_trim (m->engine);
}

const SdclModelInfo *
sdcl_model_get_info (SdclModel *m)
{
  return m->info;
}

void
sdcl_model_set_scheduler_json (SdclModel *m, const gchar *json)
{
  g_free (m->scheduler_json);
  m->scheduler_json = g_strdup (json);
}

SdclEngine *
sdcl_model_engine (SdclModel *m)
{
  return m->engine;
}

SdclClip *
sdcl_model_clip (SdclModel *m)
{
  return m->clip;
}

SdclUnet *
sdcl_model_unet (SdclModel *m)
{
  return m->unet;
}

SdclVae *
sdcl_model_vae (SdclModel *m)
{
  return m->vae;
}

const SdclClipConfig *
sdcl_model_clip_config (SdclModel *m)
{
  return &m->clip_config;
}

const SdclUnetConfig *
sdcl_model_unet_config (SdclModel *m)
{
  return &m->unet_config;
}

const gchar *
sdcl_model_scheduler_json (SdclModel *m)
{
  return m->scheduler_json;
}
