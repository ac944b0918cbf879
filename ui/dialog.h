/* dialog.h — the plug-in's dialog: a GimpProcedureDialog built from the
 * procedure's own arguments, with a model picker, a device picker and a
 * seed row of our own.
 */
#pragma once

#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>
#include <sdcl.h>

G_BEGIN_DECLS

/* Shows the dialog for `mode`; TRUE when the user pressed OK, with the
 * choices in `config`. */
gboolean sdcl_ui_dialog_run (GimpProcedure       *procedure,
                             GimpProcedureConfig *config,
                             SdclMode             mode,
                             GimpImage           *image);

/* The pickers, for the dialog and for anyone who wants them alone: each is
 * bound to its config property ("model": a GFile, "device": a string). */
GtkWidget *sdcl_ui_model_picker_new  (GimpProcedureConfig *config, SdclMode mode);
GtkWidget *sdcl_ui_device_picker_new (GimpProcedureConfig *config);

/* A small, wrapping, left-aligned note under a widget. */
GtkWidget *sdcl_ui_note_label (const gchar *text);

G_END_DECLS
