/* fullsize.c — see fullsize.h. */
#include "fullsize.h"

#include <math.h>
#include <string.h>

#include "model.h"
#include "testutil.h"

guint32
sdcl_test_name_seed (const gchar *name)
{
  guint32 h = sdcl_test_hash (0x5d5c1u);
  for (const guchar *p = (const guchar *) name; *p; p++)
    h = sdcl_test_hash (h ^ *p);
  return h;
}

typedef gboolean (*FromJson) (JsonObject *o, gpointer config, GError **error);

static gboolean
read_config (const gchar *dir, const gchar *file, FromJson parse, gpointer config, gchar **text,
             GError **error)
{
  g_autofree gchar *path = g_build_filename (dir, file, NULL);
  if (!g_file_get_contents (path, text, NULL, error))
    return FALSE;
  g_autoptr (JsonParser) p = json_parser_new ();
  if (!json_parser_load_from_data (p, *text, -1, error))
    return FALSE;
  return parse (json_node_get_object (json_parser_get_root (p)), config, error);
}

gboolean
sdcl_test_write_random_model (const gchar *config_dir, const gchar *path, GError **error)
{
  SdclClipConfig tc;
  SdclUnetConfig uc;
  SdclVaeConfig vc;
  g_autofree gchar *tj = NULL, *uj = NULL, *vj = NULL;
  if (!read_config (config_dir, "text_encoder.json", (FromJson) sdcl_clip_config_from_json, &tc, &tj, error)
      || !read_config (config_dir, "unet.json", (FromJson) sdcl_unet_config_from_json, &uc, &uj, error)
      || !read_config (config_dir, "vae.json", (FromJson) sdcl_vae_config_from_json, &vc, &vj, error))
    return FALSE;

  /* a dry run over no file lists every tensor the architecture asks for */
  g_autoptr (SdclWeights) w = sdcl_weights_new ();
  sdcl_weights_record (w);
  g_autoptr (SdclClip) clip = sdcl_clip_load (w, &tc, "text_encoder.", error);
  g_autoptr (SdclUnet) unet = clip ? sdcl_unet_load (w, &uc, "unet.", error) : NULL;
  g_autoptr (SdclVae) vae = unet ? sdcl_vae_load (w, &vc, "vae.", SDCL_VAE_ENCODER | SDCL_VAE_DECODER, error) : NULL;
  if (!vae)
    return FALSE;

  g_autoptr (SdclNameTable) names = sdcl_name_table_new (&uc, &vc, "first_stage_model.");
  g_autoptr (SdclSafetensorsWriter) out = sdcl_safetensors_writer_new ();
  for (guint i = 0; i < w->requests->len; i++)
    {
      const SdclWeightRequest *r = &g_array_index (w->requests, SdclWeightRequest, i);
      g_autofree gchar *name = sdcl_name_to_original (names, r->name);
      if (!name)
        {
          g_set_error (error, SDCL_MODEL_ERROR, SDCL_MODEL_ERROR_MISSING,
                       "no original name for '%s'", r->name);
          return FALSE;
        }
      /* 1x1 convolutions where the engine reads a linear layer, as SD 1.x
       * files store them: the transformers' proj_in/proj_out and the VAE's
       * attention */
      gint64 shape[4] = { r->shape[0], r->shape[1], 1, 1 };
      guint n_dims = r->n_dims;
      if (n_dims == 2 && g_str_has_suffix (r->name, ".weight")
          && ((!uc.linear_projection && (strstr (r->name, ".proj_in.") || strstr (r->name, ".proj_out.")))
              || (g_str_has_prefix (r->name, "vae.") && strstr (r->name, ".attentions."))))
        n_dims = 4;
      else
        memcpy (shape, r->shape, sizeof shape);
      gint64 n = 1, fan_in = 1;
      for (guint d = 0; d < r->n_dims; d++)
        {
          n *= r->shape[d];
          if (d > 0)
            fan_in *= r->shape[d];
        }
      gfloat scale = 0.1f, offset = 0.0f;
      if (r->n_dims >= 2)
        scale = 1.0f / sqrtf ((gfloat) fan_in);
      else if (strstr (r->name, "norm") && g_str_has_suffix (r->name, ".weight"))
        offset = 1.0f;
      g_autofree gfloat *v = sdcl_test_seeded (sdcl_test_name_seed (name), n, scale, offset);
      guint16 *h = g_new (guint16, n);
      for (gint64 k = 0; k < n; k++)
        h[k] = sdcl_f32_to_f16 (v[k]);
      g_autoptr (GBytes) bytes = g_bytes_new_take (h, n * sizeof (guint16));
      if (!sdcl_safetensors_writer_add_bytes (out, name, SDCL_ST_F16, n_dims, shape, bytes, error))
        return FALSE;
    }
  /* no architecture metadata, as real SD 1.x files: the engine reads it
   * from the shapes */
  return sdcl_safetensors_writer_save (out, path, error);
}
