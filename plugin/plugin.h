/* plugin.h — what the plug-in's files share: procedure names, the run
 * modes and the plug-in's error domain.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define PLUG_IN_BINARY      "sdcl-gimp"
#define PLUG_IN_ROLE        "sdcl-gimp"
#define PROC_GENERATE       "plug-in-sdcl-generate"
#define PROC_IMG2IMG        "plug-in-sdcl-img2img"
#define PROC_INPAINT        "plug-in-sdcl-inpaint"

/* Errors the plug-in itself reports (the engine's keep their own domains). */
#define SDCL_PLUGIN_ERROR (sdcl_plugin_error_quark ())
GQuark sdcl_plugin_error_quark (void);

typedef enum
{
  SDCL_PLUGIN_ERROR_NO_MODEL,        /* no model given and none in the model folders */
  SDCL_PLUGIN_ERROR_MODEL_MISSING,   /* the model file given does not exist */
  SDCL_PLUGIN_ERROR_EMPTY_SELECTION, /* inpainting with nothing selected */
  SDCL_PLUGIN_ERROR_OUTSIDE,         /* the selection does not touch the layer */
  SDCL_PLUGIN_ERROR_DRAWABLE,        /* no drawable, or more than one */
  SDCL_PLUGIN_ERROR_NO_DEVICE,       /* no OpenCL device */
} SdclPluginError;

G_END_DECLS
