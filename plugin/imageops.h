/* imageops.h — the plug-in's geometry and pixel arithmetic: the work region
 * around a selection, the grown and feathered mask, the size the model runs
 * at, and resampling. Plain C on float buffers with no GIMP call, so the
 * tests can check it without starting GIMP.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct
{
  gint x, y;
  gint width, height;
} SdclRect;

/* How far the mask reaches beyond the selection and how much context the
 * model sees around it. Negative feather or padding: chosen from the
 * selection's size (see imageops.c). */
typedef struct
{
  gint grow;                         /* pixels the selection grows by before feathering */
  gint feather;                      /* width of the soft edge outside the grown selection */
  gint padding;                      /* context around the mask, each side */
} SdclMaskSettings;

/* Resolves an automatic feather for a selection in an image of
 * image_w x image_h (automatic padding is sdcl_region_around's). */
void     sdcl_mask_settings_resolve (SdclMaskSettings *settings, const SdclRect *selection,
                                     gint image_w, gint image_h);

/* The part of `bounds` the model works on: the selection grown by what the
 * mask reaches (grow + feather), padded, made square-ish and at least
 * model_side where automatic padding asked for it, clipped to `bounds`.
 * FALSE when the selection does not touch `bounds`. */
gboolean sdcl_region_around (const SdclRect *selection, const SdclRect *bounds,
                             const SdclMaskSettings *settings, gboolean auto_padding,
                             guint model_side, SdclRect *region);

/* The size a model runs at for a region of w x h: aspect kept, the longer
 * side near model_side, both sides multiples of `multiple` (at least 2x). */
void     sdcl_region_model_size (gint w, gint h, guint model_side, guint multiple,
                                 guint *model_w, guint *model_h);

/* The layer mask in [0, 1] from the selection's values in [0, 1] (w x h):
 * 1 within `grow` pixels of a selected pixel (value >= 0.5), then a smooth
 * fall to 0 over `feather` pixels, never below the selection itself; exactly
 * 0 farther than grow + feather. Euclidean distances. */
gfloat  *sdcl_mask_grow_feather (const gfloat *selection, gint w, gint h, gint grow, gint feather);

/* The mask the engine repaints at model size: 255 wherever any pixel of the
 * full-size mask under a model pixel is above 0, else 0. */
guint8  *sdcl_mask_to_model (const gfloat *mask, gint w, gint h, guint model_w, guint model_h);

/* Separable resampling of interleaved float pixels: a Catmull-Rom cubic when
 * enlarging, a widened tent (area-like) when reducing; edges clamp. */
void     sdcl_resample (const gfloat *src, gint src_w, gint src_h, gint channels,
                        gfloat *dst, gint dst_w, gint dst_h);

G_END_DECLS
