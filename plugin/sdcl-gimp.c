/* sdcl-gimp.c — the GIMP 3 plug-in: three procedures (generate, img2img,
 * inpaint) that hand a prompt, the image and its selection to the sdcl
 * engine and put the picture that comes back into the image as a new layer.
 *
 * Everything that changes the image happens at the very end, in one undo
 * group: GIMP ends the plug-in's process when the user cancels from the
 * progress bar, and a failure returns before the first change.
 */
#include <string.h>
#include <glib/gi18n.h>
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include <sdcl.h>

#include "dialog.h"
#include "imageops.h"
#include "models.h"
#include "plugin.h"

G_DEFINE_QUARK (sdcl-plugin-error-quark, sdcl_plugin_error)

typedef struct _SdclGimp      SdclGimp;
typedef struct _SdclGimpClass SdclGimpClass;

struct _SdclGimp
{
  GimpPlugIn parent_instance;
};

struct _SdclGimpClass
{
  GimpPlugInClass parent_class;
};

#define SDCL_GIMP_TYPE (sdcl_gimp_get_type ())

GType                   sdcl_gimp_get_type         (void) G_GNUC_CONST;

static GList          * sdcl_gimp_query_procedures (GimpPlugIn           *plug_in);
static GimpProcedure  * sdcl_gimp_create_procedure (GimpPlugIn           *plug_in,
                                                    const gchar          *name);
static GimpValueArray * sdcl_gimp_run              (GimpProcedure        *procedure,
                                                    GimpRunMode           run_mode,
                                                    GimpImage            *image,
                                                    GimpDrawable        **drawables,
                                                    GimpProcedureConfig  *config,
                                                    gpointer              run_data);

G_DEFINE_TYPE (SdclGimp, sdcl_gimp, GIMP_TYPE_PLUG_IN)

GIMP_MAIN (SDCL_GIMP_TYPE)


static void
sdcl_gimp_class_init (SdclGimpClass *klass)
{
  GimpPlugInClass *plug_in_class = GIMP_PLUG_IN_CLASS (klass);

  plug_in_class->query_procedures = sdcl_gimp_query_procedures;
  plug_in_class->create_procedure = sdcl_gimp_create_procedure;
  /* no message catalogs ship yet: the strings stay English */
  plug_in_class->set_i18n         = NULL;
}

static void
sdcl_gimp_init (SdclGimp *sdcl)
{
}

static GList *
sdcl_gimp_query_procedures (GimpPlugIn *plug_in)
{
  GList *list = NULL;

  list = g_list_append (list, g_strdup (PROC_GENERATE));
  list = g_list_append (list, g_strdup (PROC_IMG2IMG));
  list = g_list_append (list, g_strdup (PROC_INPAINT));

  return list;
}

/* ---- procedures and their arguments ------------------------------------------------------ */

static SdclMode
mode_of (const gchar *name)
{
  if (! strcmp (name, PROC_IMG2IMG))
    return SDCL_MODE_IMG2IMG;
  if (! strcmp (name, PROC_INPAINT))
    return SDCL_MODE_INPAINT;
  return SDCL_MODE_TXT2IMG;
}

static GimpChoice *
sampler_choice (void)
{
  /* nicks are the engine's sampler names, labels the ones sd-webui shows */
  return gimp_choice_new_with_values ("euler",           0, _("Euler"),           NULL,
                                      "euler_a",         1, _("Euler a"),         NULL,
                                      "dpmpp_2m",        2, _("DPM++ 2M"),        NULL,
                                      "dpmpp_2m_karras", 3, _("DPM++ 2M Karras"), NULL,
                                      "ddim",            4, _("DDIM"),            NULL,
                                      "lcm",             5, _("LCM"),             NULL,
                                      NULL);
}

static GimpProcedure *
sdcl_gimp_create_procedure (GimpPlugIn  *plug_in,
                            const gchar *name)
{
  GimpProcedure *procedure;
  SdclMode       mode;

  if (strcmp (name, PROC_GENERATE) && strcmp (name, PROC_IMG2IMG) && strcmp (name, PROC_INPAINT))
    return NULL;

  mode = mode_of (name);
  procedure = gimp_image_procedure_new (plug_in, name, GIMP_PDB_PROC_TYPE_PLUGIN,
                                        sdcl_gimp_run, GINT_TO_POINTER (mode), NULL);

  gimp_procedure_set_image_types (procedure, "RGB*, GRAY*");
  gimp_procedure_set_attribution (procedure, "The sdcl authors", "The sdcl authors", "2025");

  switch (mode)
    {
    case SDCL_MODE_TXT2IMG:
      gimp_procedure_set_sensitivity_mask (procedure,
                                           GIMP_PROCEDURE_SENSITIVE_DRAWABLE |
                                           GIMP_PROCEDURE_SENSITIVE_DRAWABLES |
                                           GIMP_PROCEDURE_SENSITIVE_NO_DRAWABLES);
      gimp_procedure_set_menu_label (procedure, _("_Generate from Prompt..."));
      gimp_procedure_set_documentation (procedure,
        _("Generate a picture from a prompt as a new layer"),
        _("Runs a Stable Diffusion 1.x model on an OpenCL device and puts the picture "
          "into a new layer above the active one: over the selection's bounds, or the "
          "active layer when nothing is selected, unless width and height are given."),
        name);
      break;

    case SDCL_MODE_IMG2IMG:
      gimp_procedure_set_sensitivity_mask (procedure, GIMP_PROCEDURE_SENSITIVE_DRAWABLE);
      gimp_procedure_set_menu_label (procedure, _("_Image to Image..."));
      gimp_procedure_set_documentation (procedure,
        _("Redraw the layer, or the selection, from a prompt"),
        _("Runs the active layer (or the selection with some context around it) through "
          "a Stable Diffusion 1.x model: the strength says how far the result may move "
          "away from the pixels. The result is a new layer; for a selection it has a "
          "layer mask from the grown and feathered selection."),
        name);
      break;

    case SDCL_MODE_INPAINT:
      gimp_procedure_set_sensitivity_mask (procedure, GIMP_PROCEDURE_SENSITIVE_DRAWABLE);
      gimp_procedure_set_menu_label (procedure, _("_Inpaint Selection..."));
      gimp_procedure_set_documentation (procedure,
        _("Repaint the selection from a prompt"),
        _("Repaints what is selected, seeing the pixels around it, with a Stable "
          "Diffusion 1.x model (an inpainting model when there is one). The result is "
          "a new layer whose mask is the grown and feathered selection, so the pixels "
          "outside it stay as they were."),
        name);
      break;
    }
  gimp_procedure_add_menu_path (procedure, "<Image>/Filters/Generative");

  gimp_procedure_add_string_argument (procedure, "prompt", _("_Prompt"),
                                      _("What to draw (sd-webui syntax: (word:1.2), [word], BREAK)"),
                                      "", G_PARAM_READWRITE);
  gimp_procedure_add_string_argument (procedure, "negative-prompt", _("_Negative prompt"),
                                      _("What to keep out of the picture"),
                                      "", G_PARAM_READWRITE);
  /* ANY, not OPEN: GIMP would turn a missing file into an anonymous "out of
     range" calling error, and refuse diffusers folders */
  gimp_procedure_add_file_argument (procedure, "model", _("_Model"),
                                    _("A Stable Diffusion 1.x .safetensors file or diffusers "
                                      "folder; none: the first in sdcl's model folders"),
                                    GIMP_FILE_CHOOSER_ACTION_ANY, TRUE, NULL,
                                    G_PARAM_READWRITE);
  gimp_procedure_add_string_argument (procedure, "device", _("_Device"),
                                      _("OpenCL device: an index as `sdcl devices` lists them "
                                        "or part of its name; empty: a GPU if there is one "
                                        "(SDCL_DEVICE overrides)"),
                                      "", G_PARAM_READWRITE);
  gimp_procedure_add_choice_argument (procedure, "sampler", _("Sa_mpler"),
                                      _("The sampling method"),
                                      sampler_choice (), "euler", G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "steps", _("S_teps"),
                                   _("Sampling steps"),
                                   1, 150, 20, G_PARAM_READWRITE);
  gimp_procedure_add_double_argument (procedure, "cfg-scale", _("CFG sca_le"),
                                      _("How closely to follow the prompt (classifier-free "
                                        "guidance)"),
                                      0.0, 30.0, 7.0, G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "seed", _("S_eed"),
                                   _("Seed of the starting noise; -1: a random one (the seed "
                                     "used is returned and named in the layer's name)"),
                                   -1, G_MAXINT, -1, G_PARAM_READWRITE);

  if (mode == SDCL_MODE_TXT2IMG)
    {
      gimp_procedure_add_int_argument (procedure, "width", _("_Width"),
                                       _("Width of the picture in pixels (rounded to a multiple "
                                         "of 8); 0: the selection's or layer's width, drawn at "
                                         "the model's size and scaled"),
                                       0, 4096, 0, G_PARAM_READWRITE);
      gimp_procedure_add_int_argument (procedure, "height", _("He_ight"),
                                       _("Height of the picture in pixels; 0: as for width"),
                                       0, 4096, 0, G_PARAM_READWRITE);
    }
  else
    {
      gimp_procedure_add_double_argument (procedure, "strength", _("Stre_ngth"),
                                          _("How much to change: 0 keeps the pixels, 1 "
                                            "redraws from noise"),
                                          0.0, 1.0, mode == SDCL_MODE_INPAINT ? 1.0 : 0.75,
                                          G_PARAM_READWRITE);
      gimp_procedure_add_int_argument (procedure, "grow", _("G_row selection"),
                                       _("Pixels the selection grows by before feathering"),
                                       0, 256, 4, G_PARAM_READWRITE);
      gimp_procedure_add_int_argument (procedure, "feather", _("_Feather"),
                                       _("Width in pixels of the soft edge of the layer mask "
                                         "outside the grown selection; -1: a tenth of the "
                                         "selection's diagonal, at least 32 px on large images"),
                                       -1, 1024, -1, G_PARAM_READWRITE);
      gimp_procedure_add_int_argument (procedure, "context-padding", _("Conte_xt padding"),
                                       _("Pixels of surroundings the model sees on each side of "
                                         "the mask; -1: half the selection's mean side, the "
                                         "region square-ish and at least the model's size"),
                                       -1, 4096, -1, G_PARAM_READWRITE);
    }

  /* remembered between runs, not part of the PDB signature */
  gimp_procedure_add_int_aux_argument (procedure, "last-seed", _("Last seed"),
                                       _("The seed the last run used"),
                                       -1, G_MAXINT, -1, G_PARAM_READWRITE);

  gimp_procedure_add_layer_return_value (procedure, "layer", _("Layer"),
                                         _("The new layer"), FALSE, G_PARAM_READWRITE);
  gimp_procedure_add_int_return_value (procedure, "seed", _("Seed"),
                                       _("The seed used"), 0, G_MAXINT, 0, G_PARAM_READWRITE);
  gimp_procedure_add_string_return_value (procedure, "parameters", _("Parameters"),
                                          _("The settings as sd-webui writes them"),
                                          "", G_PARAM_READWRITE);
  return procedure;
}

/* ---- one run ------------------------------------------------------------------------------ */

typedef struct
{
  SdclMode          mode;
  GimpImage        *image;
  GimpDrawable     *drawable;        /* source of pixels; may be NULL for generate */

  gchar            *prompt;
  gchar            *negative_prompt;
  gchar            *model_path;
  gchar            *device;
  gchar            *sampler;
  gint              steps;
  gdouble           cfg_scale;
  gint              seed;
  gdouble           strength;
  gint              width, height;   /* generate: 0 = the work region's */
  SdclMaskSettings  mask_settings;
  gboolean          auto_padding;

  guint             native_size;     /* the model's */
  guint             multiple;        /* sizes the model takes are multiples of this */

  SdclRect          region;          /* the new layer, image coordinates */
  guint             model_w, model_h;
  guint8           *init_rgb;        /* [model_h][model_w][3]; img2img, inpaint */
  guint8           *engine_mask;     /* [model_h][model_w]; inpaint */
  gfloat           *layer_mask;      /* [region.height][region.width]; NULL: no mask */

  gfloat           *result;          /* [region.height][region.width][3] R'G'B' */
  guint32           seed_used;
  gchar            *parameters;
} Job;

static void
job_clear (Job *job)
{
  g_free (job->prompt);
  g_free (job->negative_prompt);
  g_free (job->model_path);
  g_free (job->device);
  g_free (job->sampler);
  g_free (job->init_rgb);
  g_free (job->engine_mask);
  g_free (job->layer_mask);
  g_free (job->result);
  g_free (job->parameters);
}

static const gchar *
mode_title (SdclMode mode)
{
  switch (mode)
    {
    case SDCL_MODE_IMG2IMG: return _("Image to image");
    case SDCL_MODE_INPAINT: return _("Inpainting");
    default:                return _("Generating");
    }
}

static gboolean
job_read_config (Job *job, GimpProcedureConfig *config, GError **error)
{
  GFile *model = NULL;

  g_object_get (config,
                "prompt",          &job->prompt,
                "negative-prompt", &job->negative_prompt,
                "model",           &model,
                "device",          &job->device,
                "sampler",         &job->sampler,
                "steps",           &job->steps,
                "cfg-scale",       &job->cfg_scale,
                "seed",            &job->seed,
                NULL);
  if (job->mode == SDCL_MODE_TXT2IMG)
    {
      g_object_get (config, "width", &job->width, "height", &job->height, NULL);
    }
  else
    {
      g_object_get (config,
                    "strength",        &job->strength,
                    "grow",            &job->mask_settings.grow,
                    "feather",         &job->mask_settings.feather,
                    "context-padding", &job->mask_settings.padding,
                    NULL);
      job->auto_padding = job->mask_settings.padding < 0;
    }

  if (model)
    {
      job->model_path = g_file_get_path (model);
      g_object_unref (model);
      if (! job->model_path || ! g_file_test (job->model_path, G_FILE_TEST_EXISTS))
        {
          g_set_error (error, SDCL_PLUGIN_ERROR, SDCL_PLUGIN_ERROR_MODEL_MISSING,
                       _("The model file %s does not exist."),
                       job->model_path ? job->model_path : _("(not a local file)"));
          return FALSE;
        }
    }
  return TRUE;
}

/* The model: the one asked for, else the default for the mode; its native
 * size and the multiple sizes must be of. */
static gboolean
job_choose_model (Job *job, GError **error)
{
  g_autoptr (SdclModelInfo) info = NULL;

  if (! job->model_path)
    {
      job->model_path = sdcl_plugin_default_model (job->mode, error);
      if (! job->model_path)
        return FALSE;
    }
  info = sdcl_model_inspect (job->model_path, NULL, error);
  if (! info)
    return FALSE;

  job->native_size = info->native_size ? info->native_size : 512;
  job->multiple = 8;
  while (job->multiple % MAX (1, info->latent_factor))
    job->multiple += 8;
  return TRUE;
}

/* Reads the region's pixels as R'G'B'A, composites them over the background
 * colour and scales them to the model's size. Read in strips of rows, so
 * a large layer costs its RGB floats and no more. */
static void
job_read_pixels (Job *job)
{
  const SdclRect *r = &job->region;
  const gint      strip = 64;
  GeglBuffer     *buffer;
  GeglColor      *background;
  gfloat          bg[3] = { 1, 1, 1 };
  gfloat         *rgba = g_new (gfloat, (gsize) r->width * strip * 4);
  gfloat         *rgb = g_new (gfloat, (gsize) r->width * r->height * 3);
  gfloat         *scaled;
  gint            ox, oy;

  background = gimp_context_get_background ();
  if (background)
    {
      gegl_color_get_pixel (background, babl_format ("R'G'B' float"), bg);
      g_object_unref (background);
    }

  gimp_drawable_get_offsets (job->drawable, &ox, &oy);
  buffer = gimp_drawable_get_buffer (job->drawable);
  for (gint y = 0; y < r->height; y += strip)
    {
      const gint   rows = MIN (strip, r->height - y);
      const gsize  n = (gsize) r->width * rows;
      gfloat      *out = rgb + (gsize) y * r->width * 3;

      gegl_buffer_get (buffer, GEGL_RECTANGLE (r->x - ox, r->y - oy + y, r->width, rows), 1.0,
                       babl_format ("R'G'B'A float"), rgba, GEGL_AUTO_ROWSTRIDE,
                       GEGL_ABYSS_NONE);
      for (gsize i = 0; i < n; i++)
        {
          const gfloat a = CLAMP (rgba[i * 4 + 3], 0.0f, 1.0f);
          for (gint c = 0; c < 3; c++)
            out[i * 3 + c] = rgba[i * 4 + c] * a + bg[c] * (1 - a);
        }
    }
  g_object_unref (buffer);
  g_free (rgba);

  scaled = g_new (gfloat, (gsize) job->model_w * job->model_h * 3);
  sdcl_resample (rgb, r->width, r->height, 3, scaled, job->model_w, job->model_h);
  g_free (rgb);

  job->init_rgb = g_new (guint8, (gsize) job->model_w * job->model_h * 3);
  for (gsize i = 0; i < (gsize) job->model_w * job->model_h * 3; i++)
    job->init_rgb[i] = (guint8) (CLAMP (scaled[i], 0.0f, 1.0f) * 255 + 0.5f);
  g_free (scaled);
}

/* The selection's values over the region, then the layer mask from them. */
static void
job_read_mask (Job *job)
{
  const SdclRect *r = &job->region;
  GimpSelection  *selection = gimp_image_get_selection (job->image);
  GeglBuffer     *buffer = gimp_drawable_get_buffer (GIMP_DRAWABLE (selection));
  gfloat         *values = g_new (gfloat, (gsize) r->width * r->height);

  gegl_buffer_get (buffer, GEGL_RECTANGLE (r->x, r->y, r->width, r->height), 1.0,
                   babl_format ("Y float"), values, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  g_object_unref (buffer);

  job->layer_mask = sdcl_mask_grow_feather (values, r->width, r->height,
                                            job->mask_settings.grow,
                                            job->mask_settings.feather);
  g_free (values);
  if (job->mode == SDCL_MODE_INPAINT)
    job->engine_mask = sdcl_mask_to_model (job->layer_mask, r->width, r->height,
                                           job->model_w, job->model_h);
}

/* What must hold before there is any point in a dialog: a layer to work
 * on, for inpainting a selection, and no floating selection (GIMP adds no
 * layer while there is one). */
static gboolean
job_check_image (Job *job, GError **error)
{
  if (gimp_image_get_floating_sel (job->image))
    {
      g_set_error_literal (error, SDCL_PLUGIN_ERROR, SDCL_PLUGIN_ERROR_DRAWABLE,
                           _("The image has a floating selection: anchor it, or make it a "
                             "new layer, first."));
      return FALSE;
    }
  if (job->mode != SDCL_MODE_TXT2IMG && ! job->drawable)
    {
      g_set_error_literal (error, SDCL_PLUGIN_ERROR, SDCL_PLUGIN_ERROR_DRAWABLE,
                           _("Select one layer to work on."));
      return FALSE;
    }
  if (job->mode == SDCL_MODE_INPAINT && gimp_selection_is_empty (job->image))
    {
      g_set_error_literal (error, SDCL_PLUGIN_ERROR, SDCL_PLUGIN_ERROR_EMPTY_SELECTION,
                           _("Nothing is selected. Inpainting repaints the selection: "
                             "select the part of the image to repaint first."));
      return FALSE;
    }
  return TRUE;
}

/* Where the new layer goes and what the engine sees; nothing in the image
 * changes. */
static gboolean
job_prepare (Job *job, GError **error)
{
  gboolean non_empty = FALSE;
  gint     x1, y1, x2, y2;
  SdclRect selection, bounds;
  const gint image_w = gimp_image_get_width (job->image);
  const gint image_h = gimp_image_get_height (job->image);

  gimp_selection_bounds (job->image, &non_empty, &x1, &y1, &x2, &y2);
  selection = (SdclRect) { x1, y1, x2 - x1, y2 - y1 };

  if (! job_choose_model (job, error))
    return FALSE;

  if (job->drawable)
    {
      gimp_drawable_get_offsets (job->drawable, &bounds.x, &bounds.y);
      bounds.width = gimp_drawable_get_width (job->drawable);
      bounds.height = gimp_drawable_get_height (job->drawable);
    }
  else
    {
      bounds = (SdclRect) { 0, 0, image_w, image_h };
    }

  if (job->mode == SDCL_MODE_TXT2IMG)
    {
      SdclRect image_rect = { 0, 0, image_w, image_h };

      if (! non_empty || ! sdcl_region_around (&selection, &image_rect,
                                               &(SdclMaskSettings) { 0, 0, 0 }, FALSE, 0,
                                               &job->region))
        job->region = bounds;
      if (job->width > 0)
        job->region.width = job->width;
      if (job->height > 0)
        job->region.height = job->height;

      if (job->width > 0 && job->height > 0)
        {
          /* an explicit size is drawn at that size */
          const guint m = job->multiple;
          job->model_w = MAX (2 * m, (job->width + m / 2) / m * m);
          job->model_h = MAX (2 * m, (job->height + m / 2) / m * m);
        }
      else
        {
          sdcl_region_model_size (job->region.width, job->region.height, job->native_size,
                                  job->multiple, &job->model_w, &job->model_h);
        }
      return TRUE;
    }

  if (non_empty)
    sdcl_mask_settings_resolve (&job->mask_settings, &selection, image_w, image_h);
  if (! sdcl_region_around (non_empty ? &selection : NULL, &bounds, &job->mask_settings,
                            job->auto_padding, job->native_size, &job->region))
    {
      g_set_error_literal (error, SDCL_PLUGIN_ERROR, SDCL_PLUGIN_ERROR_OUTSIDE,
                           _("The selection does not touch the active layer."));
      return FALSE;
    }
  sdcl_region_model_size (job->region.width, job->region.height, job->native_size,
                          job->multiple, &job->model_w, &job->model_h);

  job_read_pixels (job);
  if (non_empty)
    job_read_mask (job);
  return TRUE;
}

static gboolean
on_progress (const SdclProgress *progress, gpointer data)
{
  const Job *job = data;

  gimp_progress_set_text_printf (_("%s: step %u of %u"), mode_title (job->mode),
                                 progress->step, progress->steps);
  gimp_progress_update ((gdouble) progress->step / MAX (1, progress->steps));
  return TRUE;
}

/* Runs the engine; the picture comes back scaled to the region: enlarged
 * with sdcl_image_upscale, reduced with sdcl_resample. */
static gboolean
job_run (Job *job, GError **error)
{
  g_autoptr (SdclEngine) engine = NULL;
  g_autoptr (SdclModel)  model = NULL;
  g_autoptr (GPtrArray)  images = NULL;
  g_autoptr (GError)     local = NULL;
  SdclRequest            request;
  const SdclImage       *image;
  gfloat                *rgb, *scaled;
  const gsize            n = (gsize) job->region.width * job->region.height;

  gimp_progress_set_text (_("Opening the OpenCL device"));
  engine = sdcl_engine_new (job->device, &local);
  if (! engine)
    {
      if (g_error_matches (local, SDCL_RUNTIME_ERROR, SDCL_RUNTIME_ERROR_NO_DEVICE))
        g_set_error (error, SDCL_PLUGIN_ERROR, SDCL_PLUGIN_ERROR_NO_DEVICE,
                     _("No OpenCL device to run on (%s). Install the OpenCL driver of your "
                       "GPU, or PoCL (pocl-opencl-icd) to run on the CPU."), local->message);
      else
        g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }

  gimp_progress_set_text_printf (_("Loading %s"), job->model_path);
  /* one request per run: each part is on the device only while it works */
  model = sdcl_model_load_with_policy (engine, job->model_path, NULL, SDCL_MODEL_ON_DEMAND, error);
  if (! model)
    return FALSE;

  sdcl_request_init (&request);
  request.mode = job->mode;
  request.prompt = job->prompt;
  request.negative_prompt = job->negative_prompt;
  request.width = job->model_w;
  request.height = job->model_h;
  request.steps = job->steps;
  request.cfg_scale = job->cfg_scale;
  /* a random seed is drawn here so that it fits the PDB's int */
  request.seed = job->seed >= 0 ? job->seed : g_random_int_range (0, G_MAXINT);
  if (! sdcl_sampler_from_name (job->sampler, &request.sampler, &request.schedule, error))
    return FALSE;
  if (job->mode != SDCL_MODE_TXT2IMG)
    {
      request.strength = job->strength;
      request.init_image = job->init_rgb;
      request.init_width = job->model_w;
      request.init_height = job->model_h;
      request.mask = job->engine_mask;
    }

  gimp_progress_set_text_printf (_("%s: step %u of %u"), mode_title (job->mode), 0,
                                 job->steps);
  images = sdcl_generate (model, &request, on_progress, job, error);
  if (! images)
    return FALSE;
  image = images->pdata[0];
  job->seed_used = image->seed;
  job->parameters = g_strdup (image->parameters ? image->parameters : "");

  scaled = g_new (gfloat, n * 3);
  if (job->region.width > (gint) image->width || job->region.height > (gint) image->height)
    {
      /* enlarging: the engine's edge-preserving upscale, where a cubic
         would blur a small model's shapes (64 -> 512 px: 8 px soft edges) */
      g_autofree guint8 *big = sdcl_image_upscale (image->pixels, image->width, image->height,
                                                   job->region.width, job->region.height);
      if (! big)
        {
          g_free (scaled);
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                       _("The result cannot be enlarged to %d x %d pixels."),
                       job->region.width, job->region.height);
          return FALSE;
        }
      for (gsize i = 0; i < n * 3; i++)
        scaled[i] = big[i] / 255.0f;
    }
  else
    {
      rgb = g_new (gfloat, (gsize) image->width * image->height * 3);
      for (gsize i = 0; i < (gsize) image->width * image->height * 3; i++)
        rgb[i] = image->pixels[i] / 255.0f;
      sdcl_resample (rgb, image->width, image->height, 3, scaled,
                     job->region.width, job->region.height);
      g_free (rgb);
    }

  for (gsize i = 0; i < n * 3; i++)
    scaled[i] = CLAMP (scaled[i], 0.0f, 1.0f);
  job->result = scaled;
  gimp_progress_update (1.0);
  return TRUE;
}

static gchar *
layer_name (const Job *job)
{
  g_autofree gchar *prompt = g_strdup (job->prompt ? job->prompt : "");
  gchar            *p;

  for (p = prompt; *p; p++)
    if (*p == '\n' || *p == '\r' || *p == '\t')
      *p = ' ';
  g_strstrip (prompt);
  if (g_utf8_strlen (prompt, -1) > 48)
    {
      gchar *cut = g_utf8_offset_to_pointer (prompt, 47);
      *cut = '\0';
      p = g_strconcat (prompt, "…", NULL);
      g_free (prompt);
      prompt = p;
    }
  return g_strdup_printf (_("%s (seed %u)"), *prompt ? prompt : mode_title (job->mode),
                          job->seed_used);
}

/* The only function that changes the image: one new layer (and its mask)
 * in one undo group. */
static GimpLayer *
job_apply (Job *job)
{
  const SdclRect   *r = &job->region;
  g_autofree gchar *name = layer_name (job);
  GimpLayer        *layer;
  GimpLayer        *parent = NULL;
  gint              position = -1;
  GeglBuffer       *buffer;
  GimpImageType     type;

  type = gimp_image_get_base_type (job->image) == GIMP_GRAY ? GIMP_GRAYA_IMAGE : GIMP_RGBA_IMAGE;

  if (job->drawable)
    {
      GimpItem *above = GIMP_ITEM (job->drawable);

      if (GIMP_IS_LAYER_MASK (above))
        above = GIMP_ITEM (gimp_layer_from_mask (GIMP_LAYER_MASK (above)));
      if (GIMP_IS_LAYER (above))
        {
          GimpItem *p = gimp_item_get_parent (above);

          parent = p ? GIMP_LAYER (p) : NULL;
          position = gimp_image_get_item_position (job->image, above);
        }
    }

  gimp_image_undo_group_start (job->image);

  layer = gimp_layer_new (job->image, name, r->width, r->height, type, 100.0,
                          gimp_image_get_default_new_layer_mode (job->image));
  gimp_image_insert_layer (job->image, layer, parent, position);
  gimp_layer_set_offsets (layer, r->x, r->y);

  buffer = gimp_drawable_get_buffer (GIMP_DRAWABLE (layer));
  /* opaque: babl fills in the alpha */
  gegl_buffer_set (buffer, GEGL_RECTANGLE (0, 0, r->width, r->height), 0,
                   babl_format ("R'G'B' float"), job->result, GEGL_AUTO_ROWSTRIDE);
  g_object_unref (buffer);
  gimp_drawable_update (GIMP_DRAWABLE (layer), 0, 0, r->width, r->height);

  if (job->layer_mask)
    {
      GimpLayerMask *mask = gimp_layer_create_mask (layer, GIMP_ADD_MASK_WHITE);

      gimp_layer_add_mask (layer, mask);
      buffer = gimp_drawable_get_buffer (GIMP_DRAWABLE (mask));
      gegl_buffer_set (buffer, GEGL_RECTANGLE (0, 0, r->width, r->height), 0,
                       babl_format ("Y float"), job->layer_mask, GEGL_AUTO_ROWSTRIDE);
      g_object_unref (buffer);
      gimp_drawable_update (GIMP_DRAWABLE (mask), 0, 0, r->width, r->height);
    }

  if (job->parameters && *job->parameters)
    {
      GimpParasite *parasite = gimp_parasite_new ("sdcl-parameters",
                                                  GIMP_PARASITE_PERSISTENT |
                                                  GIMP_PARASITE_UNDOABLE,
                                                  strlen (job->parameters) + 1,
                                                  job->parameters);
      gimp_item_attach_parasite (GIMP_ITEM (layer), parasite);
      gimp_parasite_free (parasite);
    }

  gimp_image_undo_group_end (job->image);
  return layer;
}

static GimpValueArray *
sdcl_gimp_run (GimpProcedure        *procedure,
               GimpRunMode           run_mode,
               GimpImage            *image,
               GimpDrawable        **drawables,
               GimpProcedureConfig  *config,
               gpointer              run_data)
{
  Job             job = { 0 };
  GimpValueArray *return_vals;
  GimpLayer      *layer;
  GError         *error = NULL;

  gegl_init (NULL, NULL);

  job.mode = (SdclMode) GPOINTER_TO_INT (run_data);
  job.image = image;
  if (drawables && drawables[0])
    {
      if (drawables[1] && job.mode != SDCL_MODE_TXT2IMG)
        {
          g_set_error (&error, SDCL_PLUGIN_ERROR, SDCL_PLUGIN_ERROR_DRAWABLE,
                       _("Procedure '%s' works with one layer at a time."),
                       gimp_procedure_get_name (procedure));
          return gimp_procedure_new_return_values (procedure, GIMP_PDB_CALLING_ERROR, error);
        }
      job.drawable = drawables[0];
    }

  if (! job_check_image (&job, &error))
    return gimp_procedure_new_return_values (procedure, GIMP_PDB_EXECUTION_ERROR, error);

  if (run_mode == GIMP_RUN_INTERACTIVE)
    {
      gimp_ui_init (PLUG_IN_BINARY);
      if (! sdcl_ui_dialog_run (procedure, config, job.mode, image))
        return gimp_procedure_new_return_values (procedure, GIMP_PDB_CANCEL, NULL);
    }

  gimp_progress_init (mode_title (job.mode));

  if (! job_read_config (&job, config, &error) ||
      ! job_prepare (&job, &error) ||
      ! job_run (&job, &error))
    {
      job_clear (&job);
      gimp_progress_end ();
      return gimp_procedure_new_return_values (procedure, GIMP_PDB_EXECUTION_ERROR, error);
    }

  layer = job_apply (&job);
  gimp_progress_end ();
  g_object_set (config, "last-seed", (gint) job.seed_used, NULL);

  if (run_mode != GIMP_RUN_NONINTERACTIVE)
    gimp_displays_flush ();

  return_vals = gimp_procedure_new_return_values (procedure, GIMP_PDB_SUCCESS, NULL);
  GIMP_VALUES_SET_LAYER (return_vals, 1, layer);
  GIMP_VALUES_SET_INT (return_vals, 2, (gint) job.seed_used);
  GIMP_VALUES_SET_STRING (return_vals, 3, job.parameters);
  job_clear (&job);
  return return_vals;
}
