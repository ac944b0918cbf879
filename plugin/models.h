/* models.h — where the plug-in finds models: the folders it searches, the
 * models in them with their kind (what `sdcl info` says), and the default
 * one for a mode.
 */
#pragma once

#include <sdcl.h>

G_BEGIN_DECLS

typedef struct
{
  gchar        *path;                /* file or diffusers folder */
  gchar        *name;                /* file name without .safetensors */
  const gchar  *origin;              /* "SDCL_MODELS", "user", "shipped" */
  gboolean      usable;              /* inspected without error */
  SdclModelKind kind;
  gchar        *kind_name;           /* "SD 1.x", "SD 1.x inpainting"; NULL when unusable */
  gchar        *problem;             /* why it is unusable */
  guint         native_size;
  guint64       weight_bytes;
} SdclPluginModel;

/* A model at `path` (name NULL: the file name; origin NULL: none), read
 * with sdcl_model_inspect() when `check`: a model that cannot be used says
 * why in `problem`. */
SdclPluginModel *sdcl_plugin_model_new (const gchar *path, const gchar *name,
                                        const gchar *origin, gboolean check);
void             sdcl_plugin_model_free (SdclPluginModel *model);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclPluginModel, sdcl_plugin_model_free)

/* The user's model folder: GIMP's profile folder + sdcl/models
 * (~/.config/GIMP/3.0/sdcl/models). Caller frees. */
gchar     *sdcl_plugin_user_models_dir (void);

/* The folder beside the plug-in binary that `make install` fills with the
 * shipped model. Caller frees. */
gchar     *sdcl_plugin_shipped_models_dir (void);

/* Every model in the searched folders, in this order: the folders listed
 * in $SDCL_MODELS (separated by ':'), the user folder, the shipped folder;
 * by name within a folder. Each is inspected (header only) when `inspect`.
 * Returns SdclPluginModel*. */
GPtrArray *sdcl_plugin_list_models (gboolean inspect);

/* The model a run without an explicit one uses: the first model made for
 * the mode (an inpainting model for inpainting, an ordinary one otherwise),
 * else the first usable one. NULL and an error that says where to put a
 * model when there is none. */
gchar     *sdcl_plugin_default_model (SdclMode mode, GError **error);

G_END_DECLS
