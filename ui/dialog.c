/* dialog.c — the dialog of the three procedures, built from their own
 * arguments with GimpProcedureDialog: prompts on the left with the model
 * and device, sampling and size (or mask) settings on the right. The values
 * live in the procedure's config, so "Repeat" and "Re-show" see them.
 */
#include <glib/gi18n.h>
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include "dialog.h"
#include "plugin.h"

/* A prompt: a word-wrapping text view in a scrolled window in a frame. */
static void
add_prompt (GimpProcedureDialog *dialog,
            const gchar         *property,
            const gchar         *title,
            gint                 height)
{
  g_autofree gchar *scrolled_id = g_strconcat (property, "-scrolled", NULL);
  g_autofree gchar *title_id = g_strconcat (property, "-title", NULL);
  g_autofree gchar *frame_id = g_strconcat (property, "-frame", NULL);
  GtkWidget        *view;
  GtkWidget        *scrolled;

  view = gimp_procedure_dialog_get_widget (dialog, property, GTK_TYPE_TEXT_VIEW);
  gtk_text_view_set_wrap_mode (GTK_TEXT_VIEW (view), GTK_WRAP_WORD_CHAR);
  gtk_text_view_set_accepts_tab (GTK_TEXT_VIEW (view), FALSE);

  scrolled = gimp_procedure_dialog_fill_scrolled_window (dialog, scrolled_id, property);
  gtk_scrolled_window_set_shadow_type (GTK_SCROLLED_WINDOW (scrolled), GTK_SHADOW_IN);
  gtk_scrolled_window_set_policy (GTK_SCROLLED_WINDOW (scrolled),
                                  GTK_POLICY_NEVER, GTK_POLICY_AUTOMATIC);
  gtk_widget_set_size_request (scrolled, 360, height);

  gimp_procedure_dialog_get_label (dialog, title_id, title, FALSE, FALSE);
  gimp_procedure_dialog_fill_frame (dialog, frame_id, title_id, FALSE, scrolled_id);
}

GtkWidget *
sdcl_ui_note_label (const gchar *text)
{
  GtkWidget *label = gtk_label_new (text);

  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_label_set_line_wrap (GTK_LABEL (label), TRUE);
  gtk_label_set_max_width_chars (GTK_LABEL (label), 44);
  gimp_label_set_attributes (GTK_LABEL (label), PANGO_ATTR_SCALE, PANGO_SCALE_SMALL, -1);
  gtk_widget_show (label);
  return label;
}

/* ---- seed row ----------------------------------------------------------------------------- */

typedef struct
{
  GimpProcedureConfig *config;
  GtkWidget           *spin;
  GtkWidget           *random;
  GtkWidget           *reuse;
  gint                 fixed;        /* the seed to go back to when "Random" is unticked */
} SeedRow;

static void
seed_row_sync (SeedRow *row)
{
  gint seed, last;

  g_object_get (row->config, "seed", &seed, "last-seed", &last, NULL);
  g_signal_handlers_block_matched (row->random, G_SIGNAL_MATCH_DATA, 0, 0, NULL, NULL, row);
  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (row->random), seed < 0);
  g_signal_handlers_unblock_matched (row->random, G_SIGNAL_MATCH_DATA, 0, 0, NULL, NULL, row);
  gtk_widget_set_sensitive (row->spin, seed >= 0);
  gtk_widget_set_sensitive (row->reuse, last >= 0 && last != seed);
  if (last >= 0)
    {
      g_autofree gchar *tip = g_strdup_printf (_("Use the seed of the last run (%d)"), last);
      gtk_widget_set_tooltip_text (row->reuse, tip);
    }
  if (seed >= 0)
    row->fixed = seed;
}

static void
seed_row_notify (GObject *config, GParamSpec *pspec, GtkWidget *random)
{
  seed_row_sync (g_object_get_data (G_OBJECT (random), "sdcl-seed-row"));
}

static void
seed_row_random_toggled (GtkToggleButton *button, SeedRow *row)
{
  gint last;

  g_object_get (row->config, "last-seed", &last, NULL);
  if (gtk_toggle_button_get_active (button))
    g_object_set (row->config, "seed", -1, NULL);
  else
    g_object_set (row->config, "seed", row->fixed >= 0 ? row->fixed : MAX (last, 0), NULL);
}

static void
seed_row_reuse_clicked (GtkButton *button, SeedRow *row)
{
  gint last;

  g_object_get (row->config, "last-seed", &last, NULL);
  if (last >= 0)
    g_object_set (row->config, "seed", last, NULL);
}

static void
add_seed_row (GimpProcedureDialog *dialog, GimpProcedureConfig *config)
{
  SeedRow   *row = g_new0 (SeedRow, 1);
  GtkWidget *box;

  row->config = config;
  row->fixed = -1;
  row->spin = gimp_procedure_dialog_get_widget (dialog, "seed", G_TYPE_NONE);

  box = gimp_procedure_dialog_fill_box (dialog, "seed-box", "seed", NULL);
  gtk_orientable_set_orientation (GTK_ORIENTABLE (box), GTK_ORIENTATION_HORIZONTAL);
  gtk_box_set_spacing (GTK_BOX (box), 6);
  row->random = gtk_check_button_new_with_mnemonic (_("R_andom"));
  g_object_set_data_full (G_OBJECT (row->random), "sdcl-seed-row", row, g_free);
  gtk_widget_set_tooltip_text (row->random, _("A new random seed each run (seed -1)"));
  gtk_box_pack_start (GTK_BOX (box), row->random, FALSE, FALSE, 0);
  gtk_widget_show (row->random);

  row->reuse = gtk_button_new_from_icon_name (GIMP_ICON_VIEW_REFRESH, GTK_ICON_SIZE_BUTTON);
  gtk_box_pack_start (GTK_BOX (box), row->reuse, FALSE, FALSE, 0);
  gtk_widget_show (row->reuse);

  g_signal_connect (row->random, "toggled", G_CALLBACK (seed_row_random_toggled), row);
  g_signal_connect (row->reuse, "clicked", G_CALLBACK (seed_row_reuse_clicked), row);
  /* the config outlives the dialog: the handler goes with the check button */
  g_signal_connect_object (config, "notify::seed", G_CALLBACK (seed_row_notify), row->random,
                           0);
  seed_row_sync (row);
}

/* ---- the dialog --------------------------------------------------------------------------- */

gboolean
sdcl_ui_dialog_run (GimpProcedure       *procedure,
                    GimpProcedureConfig *config,
                    SdclMode             mode,
                    GimpImage           *image)
{
  GimpProcedureDialog *dialog;
  GtkWidget           *box;
  GtkWidget           *widget;
  const gchar         *title;
  const gchar         *ok;
  gboolean             run;

  switch (mode)
    {
    case SDCL_MODE_IMG2IMG:
      title = _("Image to Image (sdcl)");
      ok = _("Re_draw");
      break;
    case SDCL_MODE_INPAINT:
      title = _("Inpaint Selection (sdcl)");
      ok = _("Re_paint");
      break;
    default:
      title = _("Generate from Prompt (sdcl)");
      ok = _("_Generate");
      break;
    }

  dialog = GIMP_PROCEDURE_DIALOG (gimp_procedure_dialog_new (procedure, config, title));
  gimp_procedure_dialog_set_ok_label (dialog, ok);

  /* left: what to draw and with what */
  add_prompt (dialog, "prompt", _("Prompt"), 110);
  add_prompt (dialog, "negative-prompt", _("Negative prompt"), 56);

  widget = gimp_procedure_dialog_get_label (dialog, "model-label", _("Model"), FALSE, FALSE);
  gtk_label_set_xalign (GTK_LABEL (widget), 0.0);
  box = gimp_procedure_dialog_fill_box (dialog, "engine-box", "model-label", NULL);
  gtk_box_set_spacing (GTK_BOX (box), 4);
  gtk_box_pack_start (GTK_BOX (box), sdcl_ui_model_picker_new (config, mode), FALSE, FALSE, 0);
  widget = gtk_label_new (_("Device"));
  gtk_label_set_xalign (GTK_LABEL (widget), 0.0);
  gtk_widget_set_margin_top (widget, 6);
  gtk_widget_show (widget);
  gtk_box_pack_start (GTK_BOX (box), widget, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (box), sdcl_ui_device_picker_new (config), FALSE, FALSE, 0);
  gimp_procedure_dialog_get_label (dialog, "engine-title", _("Model and device"), FALSE, FALSE);
  gimp_procedure_dialog_fill_frame (dialog, "engine-frame", "engine-title", FALSE, "engine-box");

  box = gimp_procedure_dialog_fill_box (dialog, "left-column",
                                        "prompt-frame", "negative-prompt-frame",
                                        "engine-frame", NULL);
  gtk_box_set_spacing (GTK_BOX (box), 12);

  /* right: how */
  gimp_procedure_dialog_get_widget (dialog, "sampler", G_TYPE_NONE);
  gimp_procedure_dialog_get_scale_entry (dialog, "steps", 1.0);
  gimp_procedure_dialog_get_scale_entry (dialog, "cfg-scale", 1.0);
  add_seed_row (dialog, config);
  if (mode == SDCL_MODE_TXT2IMG)
    {
      box = gimp_procedure_dialog_fill_box (dialog, "sampling-box", "sampler", "steps",
                                            "cfg-scale", "seed-box", NULL);
    }
  else
    {
      gimp_procedure_dialog_get_scale_entry (dialog, "strength", 1.0);
      box = gimp_procedure_dialog_fill_box (dialog, "sampling-box", "sampler", "steps",
                                            "cfg-scale", "strength", "seed-box", NULL);
    }
  gtk_box_set_spacing (GTK_BOX (box), 4);
  gimp_procedure_dialog_get_label (dialog, "sampling-title", _("Sampling"), FALSE, FALSE);
  gimp_procedure_dialog_fill_frame (dialog, "sampling-frame", "sampling-title", FALSE,
                                    "sampling-box");

  if (mode == SDCL_MODE_TXT2IMG)
    {
      box = gimp_procedure_dialog_fill_box (dialog, "area-box", "width", "height", NULL);
      gtk_box_pack_start (GTK_BOX (box),
                          sdcl_ui_note_label (_("0: the selection's size, or the layer's; the picture "
                                         "is drawn at the model's size and scaled to it.")),
                          FALSE, FALSE, 0);
      gimp_procedure_dialog_get_label (dialog, "area-title", _("Size"), FALSE, FALSE);
    }
  else
    {
      widget = gimp_procedure_dialog_get_scale_entry (dialog, "grow", 1.0);
      gimp_scale_entry_set_bounds (GIMP_SCALE_ENTRY (widget), 0, 64, FALSE);
      widget = gimp_procedure_dialog_get_scale_entry (dialog, "feather", 1.0);
      gimp_scale_entry_set_bounds (GIMP_SCALE_ENTRY (widget), -1, 128, FALSE);
      widget = gimp_procedure_dialog_get_scale_entry (dialog, "context-padding", 1.0);
      gimp_scale_entry_set_bounds (GIMP_SCALE_ENTRY (widget), -1, 512, FALSE);
      box = gimp_procedure_dialog_fill_box (dialog, "area-box", "grow", "feather",
                                            "context-padding", NULL);
      gtk_box_pack_start (GTK_BOX (box),
                          sdcl_ui_note_label (_("-1 chooses from the selection's size. Without a "
                                         "selection the whole layer is used.")),
                          FALSE, FALSE, 0);
      gimp_procedure_dialog_get_label (dialog, "area-title", _("Selection"), FALSE, FALSE);
    }
  gtk_box_set_spacing (GTK_BOX (box), 4);
  gimp_procedure_dialog_fill_frame (dialog, "area-frame", "area-title", FALSE, "area-box");

  box = gimp_procedure_dialog_fill_box (dialog, "right-column", "sampling-frame", "area-frame",
                                        NULL);
  gtk_box_set_spacing (GTK_BOX (box), 12);
  gtk_widget_set_size_request (box, 340, -1);

  box = gimp_procedure_dialog_fill_box (dialog, "columns", "left-column", "right-column", NULL);
  gtk_orientable_set_orientation (GTK_ORIENTABLE (box), GTK_ORIENTATION_HORIZONTAL);
  gtk_box_set_spacing (GTK_BOX (box), 18);

  gimp_procedure_dialog_fill (dialog, "columns", NULL);

  run = gimp_procedure_dialog_run (dialog);
  gtk_widget_destroy (GTK_WIDGET (dialog));
  return run;
}
