/* sampler.h — noise schedules and samplers (internal).
 *
 * The arithmetic of diffusers' schedulers (EulerDiscrete, EulerAncestral-
 * Discrete, DDIM, DPMSolverMultistep with dpmsolver++ order 2, LCM) on
 * host arrays: latents of one image are a few thousand floats, so a step
 * costs nothing next to the UNet. Tensors are flat float arrays in the
 * latent's C order.
 */
#pragma once

#include <glib.h>

#include "rng.h"
#include "sdcl.h"

typedef enum
{
  SDCL_PREDICTION_EPSILON,
  SDCL_PREDICTION_V,
} SdclPrediction;

/* The training schedule, from a diffusers scheduler config. */
typedef struct
{
  guint          train_steps;        /* num_train_timesteps (1000) */
  gdouble        beta_start, beta_end;
  gchar          beta_schedule[32];  /* "scaled_linear" or "linear" */
  gint           steps_offset;
  gchar          spacing[16];        /* "leading", "trailing", "linspace"; "": the
                                        sampler's default (Euler, Euler a, DPM++:
                                        linspace; DDIM, LCM: leading) */
  gboolean       set_alpha_to_one;
  SdclPrediction prediction;
  gboolean       clip_sample;        /* DDIM, LCM: clamp x0 to +-clip_sample_range */
  gdouble        clip_sample_range;
  guint          lcm_original_steps; /* LCM: original_inference_steps (50) */
  gdouble        lcm_timestep_scaling;
} SdclScheduleConfig;

/* `json` NULL or "": SD 1.5's scheduler config. Otherwise what the JSON
 * leaves out takes the defaults of diffusers' scheduler classes (spacing
 * per sampler, steps_offset 0). Unknown keys are ignored, bad values are
 * errors. */
gboolean sdcl_schedule_config_parse (SdclScheduleConfig *c, const gchar *json, GError **error);

typedef struct _SdclScheduler SdclScheduler;

/* Timesteps and sigmas for `steps` steps, as diffusers' set_timesteps. */
SdclScheduler *sdcl_scheduler_new (const SdclScheduleConfig *config, SdclSampler sampler,
                                   SdclSchedule schedule, guint steps, gdouble eta,
                                   GError **error);
void sdcl_scheduler_free (SdclScheduler *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclScheduler, sdcl_scheduler_free)

/* img2img: starts `strength` of the way from the end (diffusers'
 * get_timesteps + set_begin_index). Returns the steps left to run (0:
 * strength too small for one step). */
guint sdcl_scheduler_set_strength (SdclScheduler *s, gdouble strength);

guint   sdcl_scheduler_first (const SdclScheduler *s);   /* index of the first step run */
guint   sdcl_scheduler_steps (const SdclScheduler *s);   /* all steps of the schedule */
gdouble sdcl_scheduler_timestep (const SdclScheduler *s, guint i);
/* sigmas[i] (k-diffusion sigma, i <= steps) where the sampler has them, else 0 */
gdouble sdcl_scheduler_sigma (const SdclScheduler *s, guint i);
/* What pure noise is multiplied by to start txt2img. */
gdouble sdcl_scheduler_init_noise_sigma (const SdclScheduler *s);
/* The factor the UNet input is scaled by at step i (scale_model_input). */
gdouble sdcl_scheduler_input_scale (const SdclScheduler *s, guint i);

/* out = x0 noised to the level of step i (add_noise); `i` may be steps(),
 * the end, which returns x0. */
void sdcl_scheduler_add_noise (const SdclScheduler *s, guint i, const gfloat *x0,
                               const gfloat *noise, gfloat *out, gsize n);

/* One step from step i (i = first, first+1, ... in order): sample is
 * updated in place to the sample at step i+1. `rng` feeds the samplers
 * that add noise (Euler a, DDIM eta > 0, LCM). `denoised` (NULL: not
 * wanted) receives the current estimate of the clean latent. */
void sdcl_scheduler_step (SdclScheduler *s, guint i, const gfloat *model_output, gfloat *sample,
                          SdclRng *rng, gfloat *denoised, gsize n);
