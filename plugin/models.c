/* models.c — the model folders of the plug-in and the models in them.
 *
 * Three places, searched in this order: folders named in $SDCL_MODELS
 * (for scripts and tests), the user's folder inside GIMP's profile
 * (gimp_directory()/sdcl/models, where people drop .safetensors files),
 * and the folder beside the plug-in binary that `make install` fills with
 * the shipped model. A model is a .safetensors file or a diffusers folder.
 */
#include <string.h>
#include <glib/gi18n.h>
#include <libgimp/gimp.h>

#include "models.h"
#include "plugin.h"

void
sdcl_plugin_model_free (SdclPluginModel *model)
{
  if (!model)
    return;
  g_free (model->path);
  g_free (model->name);
  g_free (model->kind_name);
  g_free (model->problem);
  g_free (model);
}

gchar *
sdcl_plugin_user_models_dir (void)
{
  return g_build_filename (gimp_directory (), "sdcl", "models", NULL);
}

gchar *
sdcl_plugin_shipped_models_dir (void)
{
  const gchar *prog = gimp_get_progname ();
  g_autofree gchar *dir = prog ? g_path_get_dirname (prog) : g_strdup (".");
  return g_build_filename (dir, "models", NULL);
}

static gboolean
is_diffusers_folder (const gchar *path)
{
  g_autofree gchar *index = g_build_filename (path, "model_index.json", NULL);
  g_autofree gchar *unet = g_build_filename (path, "unet", NULL);
  return g_file_test (index, G_FILE_TEST_IS_REGULAR) || g_file_test (unet, G_FILE_TEST_IS_DIR);
}

SdclPluginModel *
sdcl_plugin_model_new (const gchar *path, const gchar *name, const gchar *origin, gboolean check)
{
  SdclPluginModel *m = g_new0 (SdclPluginModel, 1);
  m->path = g_strdup (path);
  m->name = name ? g_strdup (name) : g_path_get_basename (path);
  m->origin = origin;
  if (!check)
    return m;

  g_autoptr (GError) error = NULL;
  g_autoptr (SdclModelInfo) info = sdcl_model_inspect (path, NULL, &error);
  if (!info)
    {
      m->problem = g_strdup (error->message);
      return m;
    }
  m->usable = TRUE;
  m->kind = info->kind;
  m->kind_name = g_strdup (info->kind_name);
  m->native_size = info->native_size;
  m->weight_bytes = info->weight_bytes;
  return m;
}

static gint
by_name (gconstpointer a, gconstpointer b)
{
  return g_utf8_collate (*(const gchar * const *) a, *(const gchar * const *) b);
}

static void
scan (GPtrArray *out, GHashTable *seen, const gchar *dir, const gchar *origin, gboolean check)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  if (!d)
    return;
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const gchar *entry;
  while ((entry = g_dir_read_name (d)))
    if (entry[0] != '.')
      g_ptr_array_add (names, g_strdup (entry));
  g_ptr_array_sort (names, by_name);

  for (guint i = 0; i < names->len; i++)
    {
      const gchar *name = names->pdata[i];
      g_autofree gchar *path = g_build_filename (dir, name, NULL);
      const gboolean file = g_str_has_suffix (name, ".safetensors")
                            && g_file_test (path, G_FILE_TEST_IS_REGULAR);
      if (!file && !(g_file_test (path, G_FILE_TEST_IS_DIR) && is_diffusers_folder (path)))
        continue;
      g_autofree gchar *canonical = g_canonicalize_filename (path, NULL);
      if (g_hash_table_contains (seen, canonical))
        continue;
      g_hash_table_add (seen, g_strdup (canonical));

      g_autofree gchar *stem = file ? g_strndup (name, strlen (name) - strlen (".safetensors"))
                                    : g_strdup (name);
      g_ptr_array_add (out, sdcl_plugin_model_new (path, stem, origin, check));
    }
}

GPtrArray *
sdcl_plugin_list_models (gboolean check)
{
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) sdcl_plugin_model_free);
  g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  const gchar *env = g_getenv ("SDCL_MODELS");
  if (env && *env)
    {
      g_auto (GStrv) dirs = g_strsplit (env, G_SEARCHPATH_SEPARATOR_S, -1);
      for (gchar **dir = dirs; *dir; dir++)
        if (**dir)
          scan (out, seen, *dir, "SDCL_MODELS", check);
    }
  g_autofree gchar *user = sdcl_plugin_user_models_dir ();
  scan (out, seen, user, "user", check);
  g_autofree gchar *shipped = sdcl_plugin_shipped_models_dir ();
  scan (out, seen, shipped, "shipped", check);
  return out;
}

gchar *
sdcl_plugin_default_model (SdclMode mode, GError **error)
{
  g_autoptr (GPtrArray) models = sdcl_plugin_list_models (TRUE);
  const SdclModelKind   wanted = mode == SDCL_MODE_INPAINT ? SDCL_MODEL_KIND_SD1_INPAINT
                                                           : SDCL_MODEL_KIND_SD1;
  /* the first of the kind made for the mode, else the first that works;
     the user's own models (SDCL_MODELS, the profile's folder) before the
     shipped ones, so a user's SD 1.5 checkpoint is not passed over for the
     shipped inpainting variant of the small shapes model */
  for (gint shipped = 0; shipped < 2; shipped++)
    {
      const SdclPluginModel *first = NULL;
      for (guint i = 0; i < models->len; i++)
        {
          const SdclPluginModel *m = models->pdata[i];
          if (!m->usable || (g_strcmp0 (m->origin, "shipped") == 0) != shipped)
            continue;
          if (!first)
            first = m;
          if (m->kind == wanted)
            return g_strdup (m->path);
        }
      if (first)
        return g_strdup (first->path);
    }

  g_autofree gchar *user = sdcl_plugin_user_models_dir ();
  g_set_error (error, SDCL_PLUGIN_ERROR, SDCL_PLUGIN_ERROR_NO_MODEL,
               _("No model found. Put a Stable Diffusion 1.x model (.safetensors) into "
                 "%s, or choose a model file."), user);
  return NULL;
}
