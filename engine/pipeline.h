/* pipeline.h — what the tests see of sdcl_generate() (internal). */
#pragma once

#include "sdcl.h"

/* The first image's intermediate values, as diffusers' pipelines would
 * show them. Latents are flat in torch's [C][h][w] order. */
typedef struct
{
  guint   latent_width, latent_height, latent_channels;
  GArray *step_latents;     /* gfloat: the sample after each step run, one after another */
  gfloat *noise;            /* the initial noise drawn */
  gfloat *final_latent;     /* unscaled, as handed to the VAE */
  gfloat *image;            /* [3][H][W] in [0, 1], before any paste-back */
} SdclTrace;

void sdcl_trace_clear (SdclTrace *trace);

GPtrArray *sdcl_generate_traced (SdclModel *model, const SdclRequest *request,
                                 SdclProgressFunc progress, gpointer user_data,
                                 SdclTrace *trace, GError **error);
