/* pickers.c — the model and device pickers of the dialog. Each is a combo
 * box over a config property: the model picker lists the models in sdcl's
 * model folders with their kind (as `sdcl info` reads it) and offers any
 * other file; the device picker lists the OpenCL devices.
 */
#include <string.h>
#include <glib/gi18n.h>
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include "dialog.h"
#include "models.h"

#define OTHER_ID "sdcl-other-file"

/* ---- model picker ------------------------------------------------------------------------ */

typedef struct
{
  GimpProcedureConfig *config;
  GtkComboBoxText     *combo;
  GtkLabel            *info;
  GPtrArray           *models;       /* SdclPluginModel*, inspected */
  gchar               *current;      /* path shown before "Other file..." was picked */
  gulong               changed_id;
} ModelPicker;

static void
model_picker_free (ModelPicker *picker)
{
  g_ptr_array_unref (picker->models);
  g_free (picker->current);
  g_free (picker);
}

static SdclPluginModel *
model_for_path (ModelPicker *picker, const gchar *path)
{
  SdclPluginModel *model;

  for (guint i = 0; i < picker->models->len; i++)
    {
      model = picker->models->pdata[i];
      if (! strcmp (model->path, path))
        return model;
    }

  /* a file from elsewhere: inspect it too */
  model = sdcl_plugin_model_new (path, NULL, NULL, TRUE);
  g_ptr_array_add (picker->models, model);
  return model;
}

static gchar *
model_label (const SdclPluginModel *model)
{
  if (! model->usable)
    return g_strdup_printf (_("%s (cannot be used)"), model->name);
  return g_strdup_printf ("%s — %s", model->name, model->kind_name);
}

static void
model_picker_show_info (ModelPicker *picker, const gchar *path)
{
  g_autofree gchar *text = NULL;

  if (! path)
    {
      g_autofree gchar *user = sdcl_plugin_user_models_dir ();
      text = g_strdup_printf (_("No model found. Put Stable Diffusion 1.x .safetensors files "
                                "into %s, or choose a file."), user);
    }
  else
    {
      const SdclPluginModel *model = model_for_path (picker, path);
      const gchar           *origin = "";

      if (model->origin && ! strcmp (model->origin, "user"))
        origin = _(" · your model folder");
      else if (model->origin && ! strcmp (model->origin, "shipped"))
        origin = _(" · shipped with sdcl");
      else if (model->origin)
        origin = " · SDCL_MODELS";

      if (model->usable)
        {
          g_autofree gchar *size = g_format_size (model->weight_bytes);
          text = g_strdup_printf (_("%s · %u×%u pixels · %s%s"),
                                  model->kind_name, model->native_size, model->native_size,
                                  size, origin);
        }
      else
        {
          text = g_strdup (model->problem);
        }
    }
  gtk_label_set_text (picker->info, text);
}

static void
model_picker_add (ModelPicker *picker, const SdclPluginModel *model)
{
  g_autofree gchar *label = model_label (model);
  GtkTreeModel     *store = gtk_combo_box_get_model (GTK_COMBO_BOX (picker->combo));
  /* before the last row, "Other file..." */
  gint              position = MAX (0, gtk_tree_model_iter_n_children (store, NULL) - 1);

  gtk_combo_box_text_insert (picker->combo, position, model->path, label);
}

static void
model_picker_select (ModelPicker *picker, const gchar *path)
{
  g_signal_handler_block (picker->combo, picker->changed_id);
  if (! gtk_combo_box_set_active_id (GTK_COMBO_BOX (picker->combo), path))
    {
      model_picker_add (picker, model_for_path (picker, path));
      gtk_combo_box_set_active_id (GTK_COMBO_BOX (picker->combo), path);
    }
  g_signal_handler_unblock (picker->combo, picker->changed_id);

  g_free (picker->current);
  picker->current = g_strdup (path);
  model_picker_show_info (picker, path);
}

static void
model_picker_set (ModelPicker *picker, const gchar *path)
{
  GFile *file = g_file_new_for_path (path);

  g_object_set (picker->config, "model", file, NULL);
  g_object_unref (file);
}

static gchar *
choose_file (GtkWidget *parent, const gchar *current)
{
  GtkWidget     *chooser;
  GtkFileFilter *filter;
  gchar         *path = NULL;

  chooser = gtk_file_chooser_dialog_new (_("Choose a Model"),
                                         GTK_WINDOW (gtk_widget_get_toplevel (parent)),
                                         GTK_FILE_CHOOSER_ACTION_OPEN,
                                         _("_Cancel"), GTK_RESPONSE_CANCEL,
                                         _("_Open"),   GTK_RESPONSE_ACCEPT,
                                         NULL);
  filter = gtk_file_filter_new ();
  gtk_file_filter_set_name (filter, _("Safetensors models (*.safetensors)"));
  gtk_file_filter_add_pattern (filter, "*.safetensors");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (chooser), filter);
  if (current)
    gtk_file_chooser_set_filename (GTK_FILE_CHOOSER (chooser), current);

  if (gtk_dialog_run (GTK_DIALOG (chooser)) == GTK_RESPONSE_ACCEPT)
    path = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (chooser));
  gtk_widget_destroy (chooser);
  return path;
}

static void
model_picker_changed (GtkComboBox *combo, ModelPicker *picker)
{
  const gchar      *id = gtk_combo_box_get_active_id (combo);
  g_autofree gchar *path = NULL;

  if (! id)
    return;
  if (strcmp (id, OTHER_ID))
    path = g_strdup (id);
  else
    path = choose_file (GTK_WIDGET (combo), picker->current);

  if (path)
    {
      model_picker_select (picker, path);
      model_picker_set (picker, path);
    }
  else
    {
      g_autofree gchar *previous = g_strdup (picker->current);

      g_signal_handler_block (combo, picker->changed_id);
      if (previous)
        gtk_combo_box_set_active_id (combo, previous);
      else
        gtk_combo_box_set_active (combo, -1);
      g_signal_handler_unblock (combo, picker->changed_id);
    }
}

GtkWidget *
sdcl_ui_model_picker_new (GimpProcedureConfig *config, SdclMode mode)
{
  ModelPicker *picker = g_new0 (ModelPicker, 1);
  GtkWidget   *box;
  GtkWidget   *info;
  GFile       *file = NULL;
  gchar       *path = NULL;

  picker->config = config;
  picker->models = sdcl_plugin_list_models (TRUE);

  box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 4);
  picker->combo = GTK_COMBO_BOX_TEXT (gtk_combo_box_text_new ());
  gtk_widget_set_hexpand (GTK_WIDGET (picker->combo), TRUE);
  gtk_box_pack_start (GTK_BOX (box), GTK_WIDGET (picker->combo), FALSE, FALSE, 0);

  info = sdcl_ui_note_label (NULL);
  gtk_style_context_add_class (gtk_widget_get_style_context (info), "dim-label");
  gtk_box_pack_start (GTK_BOX (box), info, FALSE, FALSE, 0);
  picker->info = GTK_LABEL (info);

  gtk_combo_box_text_append (picker->combo, OTHER_ID, _("Other file..."));
  for (guint i = 0; i < picker->models->len; i++)
    model_picker_add (picker, picker->models->pdata[i]);

  picker->changed_id = g_signal_connect (picker->combo, "changed",
                                         G_CALLBACK (model_picker_changed), picker);
  g_object_set_data_full (G_OBJECT (box), "sdcl-model-picker", picker,
                          (GDestroyNotify) model_picker_free);

  g_object_get (config, "model", &file, NULL);
  if (file)
    {
      path = g_file_get_path (file);
      g_object_unref (file);
    }
  if (! path)
    {
      /* what a run without a model would use, shown and chosen */
      path = sdcl_plugin_default_model (mode, NULL);
      if (path)
        model_picker_set (picker, path);
    }
  if (path)
    model_picker_select (picker, path);
  else
    model_picker_show_info (picker, NULL);
  g_free (path);

  gtk_widget_show_all (box);
  return box;
}

/* ---- device picker ---------------------------------------------------------------------- */

static void
device_picker_changed (GtkComboBox *combo, GimpProcedureConfig *config)
{
  const gchar *id = gtk_combo_box_get_active_id (combo);

  if (id)
    g_object_set (config, "device", id, NULL);
}

GtkWidget *
sdcl_ui_device_picker_new (GimpProcedureConfig *config)
{
  GtkWidget        *box;
  GtkWidget        *combo;
  GtkWidget        *info;
  GPtrArray        *devices;
  GError           *error = NULL;
  g_autofree gchar *current = NULL;
  g_autofree gchar *note = NULL;
  const gchar      *env = g_getenv ("SDCL_DEVICE");

  g_object_get (config, "device", &current, NULL);

  box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 4);
  combo = gtk_combo_box_text_new ();
  gtk_widget_set_hexpand (combo, TRUE);
  gtk_box_pack_start (GTK_BOX (box), combo, FALSE, FALSE, 0);

  gtk_combo_box_text_append (GTK_COMBO_BOX_TEXT (combo), "",
                             _("Automatic (a GPU if there is one)"));

  devices = sdcl_list_devices (&error);
  if (devices)
    {
      for (guint i = 0; i < devices->len; i++)
        {
          const SdclDeviceInfo *d = devices->pdata[i];
          g_autofree gchar *id = g_strdup_printf ("%u", d->device_index);
          g_autofree gchar *memory = g_format_size (d->global_mem_bytes);
          g_autofree gchar *label = g_strdup_printf ("%u: %s (%s, %s)", d->device_index,
                                                     d->name,
                                                     d->is_gpu ? _("GPU") : _("CPU"),
                                                     memory);
          gtk_combo_box_text_append (GTK_COMBO_BOX_TEXT (combo), id, label);
        }
      if (devices->len == 0)
        note = g_strdup (_("No OpenCL device found: install your GPU's OpenCL driver, or "
                           "PoCL (pocl-opencl-icd) for the CPU."));
      g_ptr_array_unref (devices);
    }
  else
    {
      note = g_strdup (error->message);
      g_error_free (error);
    }

  if (current && *current &&
      ! gtk_combo_box_set_active_id (GTK_COMBO_BOX (combo), current))
    {
      gtk_combo_box_text_append (GTK_COMBO_BOX_TEXT (combo), current, current);
      gtk_combo_box_set_active_id (GTK_COMBO_BOX (combo), current);
    }
  else if (! current || ! *current)
    {
      gtk_combo_box_set_active_id (GTK_COMBO_BOX (combo), "");
    }
  g_signal_connect (combo, "changed", G_CALLBACK (device_picker_changed), config);

  if (env && *env)
    {
      gchar *both = g_strdup_printf (_("SDCL_DEVICE=%s is set and overrides this choice.%s%s"),
                                     env, note ? "\n" : "", note ? note : "");
      g_free (note);
      note = both;
    }
  if (note)
    {
      info = sdcl_ui_note_label (note);
      gtk_box_pack_start (GTK_BOX (box), info, FALSE, FALSE, 0);
    }

  gtk_widget_show_all (box);
  return box;
}
