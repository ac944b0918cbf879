/* sampler.c — noise schedules and samplers, following diffusers'
 * schedulers step for step (see sampler.h). Schedule values are computed
 * the way diffusers computes them: the training schedule in float32 as
 * torch does, the inference schedule in double as numpy does, then stored
 * as float32.
 */
#include <math.h>
#include <string.h>
#include <json-glib/json-glib.h>

#include "sampler.h"

struct _SdclScheduler
{
  SdclScheduleConfig c;
  SdclSampler  sampler;
  SdclSchedule schedule;
  gdouble      eta;
  guint        n;              /* steps of the whole schedule */
  guint        first;          /* first step run (img2img) */
  gdouble     *t;              /* n timesteps, as the UNet sees them */
  gdouble     *sigma;          /* n + 1 k-diffusion sigmas, the last 0 (Euler, DPM++) */
  gfloat      *ac;             /* alphas_cumprod, train_steps */
  gdouble      final_ac;       /* alpha_cumprod past the end (DDIM, LCM) */
  gfloat      *prev_x0;        /* DPM++ 2M: the previous step's model output as x0 */
  guint        lower_order_nums;
};

/* ---- config ------------------------------------------------------------------------ */

static gboolean
config_error (GError **error, const gchar *key, const gchar *why)
{
  g_set_error (error, SDCL_MODEL_ERROR, SDCL_MODEL_ERROR_CONFIG,
               "scheduler config: \"%s\" %s", key, why);
  return FALSE;
}

static gboolean
copy_string (JsonObject *o, const gchar *key, gchar *dst, gsize size, GError **error)
{
  if (!json_object_has_member (o, key) || json_object_get_null_member (o, key))
    return TRUE;
  const gchar *v = json_object_get_string_member_with_default (o, key, NULL);
  if (!v || strlen (v) >= size)
    return config_error (error, key, "is not a known setting");
  g_strlcpy (dst, v, size);
  return TRUE;
}

gboolean
sdcl_schedule_config_parse (SdclScheduleConfig *c, const gchar *json, GError **error)
{
  /* without a config: SD 1.5's (which names no spacing); with one, what it
     leaves out takes the scheduler classes' defaults, as in diffusers */
  memset (c, 0, sizeof *c);
  c->train_steps = 1000;
  c->beta_start = 0.00085;
  c->beta_end = 0.012;
  g_strlcpy (c->beta_schedule, "scaled_linear", sizeof c->beta_schedule);
  c->steps_offset = 1;
  c->prediction = SDCL_PREDICTION_EPSILON;
  c->lcm_original_steps = 50;
  c->lcm_timestep_scaling = 10.0;
  c->clip_sample_range = 1.0;
  if (!json || !*json)
    return TRUE;

  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) local = NULL;
  if (!json_parser_load_from_data (parser, json, -1, &local)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      g_set_error (error, SDCL_MODEL_ERROR, SDCL_MODEL_ERROR_CONFIG,
                   "scheduler config is not a JSON object%s%s", local ? ": " : "",
                   local ? local->message : "");
      return FALSE;
    }
  JsonObject *o = json_node_get_object (json_parser_get_root (parser));
  gchar prediction[32] = "epsilon";
  if (!copy_string (o, "beta_schedule", c->beta_schedule, sizeof c->beta_schedule, error)
      || !copy_string (o, "timestep_spacing", c->spacing, sizeof c->spacing, error)
      || !copy_string (o, "prediction_type", prediction, sizeof prediction, error))
    return FALSE;
  c->train_steps = json_object_get_int_member_with_default (o, "num_train_timesteps", 1000);
  c->beta_start = json_object_get_double_member_with_default (o, "beta_start", c->beta_start);
  c->beta_end = json_object_get_double_member_with_default (o, "beta_end", c->beta_end);
  c->steps_offset = json_object_get_int_member_with_default (o, "steps_offset", 0);
  c->set_alpha_to_one = json_object_get_boolean_member_with_default (o, "set_alpha_to_one", FALSE);
  c->clip_sample = json_object_get_boolean_member_with_default (o, "clip_sample", FALSE);
  c->clip_sample_range = json_object_get_double_member_with_default (o, "clip_sample_range", 1.0);
  c->lcm_original_steps = json_object_get_int_member_with_default (o, "original_inference_steps", 50);
  c->lcm_timestep_scaling = json_object_get_double_member_with_default (o, "timestep_scaling", 10.0);

  if (c->train_steps < 2 || c->train_steps > 100000)
    return config_error (error, "num_train_timesteps", "is out of range");
  if (!(c->beta_start > 0 && c->beta_end >= c->beta_start && c->beta_end < 1))
    return config_error (error, "beta_start", "and \"beta_end\" do not make a schedule");
  if (!g_str_equal (c->beta_schedule, "scaled_linear") && !g_str_equal (c->beta_schedule, "linear"))
    return config_error (error, "beta_schedule", "is not \"scaled_linear\" or \"linear\"");
  if (*c->spacing && !g_str_equal (c->spacing, "leading") && !g_str_equal (c->spacing, "trailing")
      && !g_str_equal (c->spacing, "linspace"))
    return config_error (error, "timestep_spacing", "is not \"leading\", \"trailing\" or \"linspace\"");
  if (g_str_equal (prediction, "epsilon"))
    c->prediction = SDCL_PREDICTION_EPSILON;
  else if (g_str_equal (prediction, "v_prediction"))
    c->prediction = SDCL_PREDICTION_V;
  else
    return config_error (error, "prediction_type", "is not \"epsilon\" or \"v_prediction\"");
  if (c->steps_offset < 0 || c->steps_offset >= (gint) c->train_steps)
    return config_error (error, "steps_offset", "is out of range");
  if (c->lcm_original_steps < 1 || c->lcm_original_steps > c->train_steps)
    return config_error (error, "original_inference_steps", "is out of range");
  return TRUE;
}

/* ---- the training schedule ------------------------------------------------------- */

/* torch.linspace in float32: from the start for the first half, from the
 * end for the second. */
static gfloat
linspace_f32 (gfloat start, gfloat end, guint steps, guint i)
{
  const gfloat step = (end - start) / (gfloat) (steps - 1);
  return i < steps / 2 ? start + step * (gfloat) i : end - step * (gfloat) (steps - i - 1);
}

static gfloat *
alphas_cumprod (const SdclScheduleConfig *c)
{
  gfloat *ac = g_new (gfloat, c->train_steps);
  const gboolean scaled = g_str_equal (c->beta_schedule, "scaled_linear");
  const gfloat start = scaled ? (gfloat) sqrt (c->beta_start) : (gfloat) c->beta_start;
  const gfloat end = scaled ? (gfloat) sqrt (c->beta_end) : (gfloat) c->beta_end;
  gfloat prod = 1.0f;
  for (guint i = 0; i < c->train_steps; i++)
    {
      gfloat beta = linspace_f32 (start, end, c->train_steps, i);
      if (scaled)
        beta = beta * beta;
      prod = prod * (1.0f - beta);
      ac[i] = prod;
    }
  return ac;
}

static gdouble
train_sigma (const SdclScheduler *s, guint t)
{
  /* float32, as torch computes ((1 - ac) / ac) ** 0.5 */
  return sqrtf ((1.0f - s->ac[t]) / s->ac[t]);
}

/* np.interp over the training sigmas at a (possibly fractional) timestep */
static gdouble
sigma_at (const SdclScheduler *s, gdouble t)
{
  const guint last = s->c.train_steps - 1;
  if (t <= 0)
    return train_sigma (s, 0);
  if (t >= last)
    return train_sigma (s, last);
  const guint lo = (guint) floor (t);
  const gdouble w = t - lo;
  const gdouble a = train_sigma (s, lo), b = train_sigma (s, lo + 1);
  return w == 0 ? a : a + (b - a) * w;
}

/* diffusers' _sigma_to_t: the fractional timestep of a sigma, linear in
 * log sigma between the neighbouring training steps. */
static gdouble
sigma_to_t (const SdclScheduler *s, gdouble sigma)
{
  const gdouble log_sigma = log (MAX (sigma, 1e-10));
  const guint T = s->c.train_steps;
  /* log sigmas in float32, as numpy takes them from a float32 table; the
     last index whose log sigma is <= log_sigma (sigmas increase with t) */
  guint low = 0;
  for (guint i = 0; i < T; i++)
    if (log_sigma - (gfloat) log (train_sigma (s, i)) >= 0)
      low = i;
  low = MIN (low, T - 2);
  const gdouble lo = (gfloat) log (train_sigma (s, low));
  const gdouble hi = (gfloat) log (train_sigma (s, low + 1));
  const gdouble w = CLAMP ((lo - log_sigma) / (lo - hi), 0.0, 1.0);
  return (1 - w) * low + w * (low + 1);
}

/* Karras et al. (2022), rho 7, from sigma_max down to sigma_min */
static void
karras (gdouble *sigma, guint n, gdouble sigma_min, gdouble sigma_max)
{
  const gdouble rho = 7.0;
  const gdouble min_inv = pow (sigma_min, 1 / rho), max_inv = pow (sigma_max, 1 / rho);
  for (guint i = 0; i < n; i++)
    {
      const gdouble ramp = n > 1 ? (gdouble) i / (n - 1) : 0.0;
      sigma[i] = pow (max_inv + ramp * (min_inv - max_inv), rho);
    }
}

/* ---- the inference schedule ---------------------------------------------------------- */

/* Timestep k of n as the config's spacing places it, diffusers' way, with
 * `m` intervals (n, or n + 1 for DPM-Solver, which drops the last):
 * "leading" (m-1-k)·(T // m) + offset, "trailing" round(T - k·T/n) - 1,
 * "linspace" (T-1)·(m-1-k)/(m-1) (unrounded; integer samplers round it). */
static gdouble
spaced (const SdclScheduler *s, guint k, guint m)
{
  const guint T = s->c.train_steps;
  if (g_str_equal (s->c.spacing, "leading"))
    return (gdouble) (m - 1 - k) * (T / m) + s->c.steps_offset;
  if (g_str_equal (s->c.spacing, "trailing"))
    return nearbyint ((gdouble) T + k * -((gdouble) T / s->n)) - 1;
  return (T - 1) * (gdouble) (m - 1 - k) / MAX (m - 1, 1);
}

/* Euler, Euler a: float timesteps, sigmas interpolated at them */
static void
schedule_euler (SdclScheduler *s)
{
  const guint n = s->n;
  for (guint k = 0; k < n; k++)
    {
      s->t[k] = (gfloat) spaced (s, k, n);
      s->sigma[k] = sigma_at (s, s->t[k]);
    }
  if (s->schedule == SDCL_SCHEDULE_KARRAS)
    {
      karras (s->sigma, n, s->sigma[n - 1], s->sigma[0]);
      for (guint k = 0; k < n; k++)
        s->t[k] = (gfloat) sigma_to_t (s, s->sigma[k]);
    }
  s->sigma[n] = 0;
}

/* DPM++ 2M: integer timesteps over n + 1 intervals */
static void
schedule_dpm (SdclScheduler *s)
{
  const guint T = s->c.train_steps, n = s->n;
  for (guint k = 0; k < n; k++)
    {
      s->t[k] = nearbyint (spaced (s, k, n + 1));
      s->sigma[k] = sigma_at (s, s->t[k]);
    }
  if (s->schedule == SDCL_SCHEDULE_KARRAS)
    {
      /* over the whole training range, not the chosen timesteps */
      karras (s->sigma, n, train_sigma (s, 0), train_sigma (s, T - 1));
      for (guint k = 0; k < n; k++)
        s->t[k] = nearbyint (sigma_to_t (s, s->sigma[k]));
    }
  s->sigma[n] = 0;
}

/* DDIM: integer timesteps */
static void
schedule_ddim (SdclScheduler *s)
{
  for (guint k = 0; k < s->n; k++)
    s->t[k] = nearbyint (spaced (s, k, s->n));
}

/* LCM: n of the distillation's `original_inference_steps` timesteps */
static void
schedule_lcm (SdclScheduler *s)
{
  const guint orig = s->c.lcm_original_steps, k = s->c.train_steps / orig;
  for (guint j = 0; j < s->n; j++)
    {
      const guint m = (guint) floor ((gdouble) j * orig / s->n);
      s->t[j] = (gdouble) (orig - m) * k - 1;
    }
}

static gboolean
uses_sigmas (SdclSampler sampler)
{
  return sampler == SDCL_SAMPLER_EULER || sampler == SDCL_SAMPLER_EULER_A
         || sampler == SDCL_SAMPLER_DPMPP_2M;
}

SdclScheduler *
sdcl_scheduler_new (const SdclScheduleConfig *config, SdclSampler sampler, SdclSchedule schedule,
                    guint steps, gdouble eta, GError **error)
{
  if (steps < 1 || steps > config->train_steps)
    {
      g_set_error (error, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_INVALID,
                   "steps must be between 1 and %u, not %u", config->train_steps, steps);
      return NULL;
    }
  if (sampler == SDCL_SAMPLER_LCM && steps > config->lcm_original_steps)
    {
      g_set_error (error, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_INVALID,
                   "the LCM sampler takes at most %u steps, not %u", config->lcm_original_steps,
                   steps);
      return NULL;
    }
  if (schedule == SDCL_SCHEDULE_KARRAS && !uses_sigmas (sampler))
    {
      g_set_error (error, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_INVALID,
                   "Karras sigmas apply to Euler, Euler a and DPM++ 2M, not %s",
                   sdcl_sampler_display_name (sampler));
      return NULL;
    }
  if (!(eta >= 0 && eta <= 1))
    {
      g_set_error (error, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_INVALID,
                   "eta must be between 0 and 1, not %g", eta);
      return NULL;
    }
  SdclScheduler *s = g_new0 (SdclScheduler, 1);
  s->c = *config;
  s->sampler = sampler;
  s->schedule = schedule;
  s->eta = eta;
  s->n = steps;
  s->ac = alphas_cumprod (config);
  s->final_ac = config->set_alpha_to_one ? 1.0 : s->ac[0];
  if (!*s->c.spacing)   /* the class defaults of diffusers' schedulers */
    g_strlcpy (s->c.spacing,
               sampler == SDCL_SAMPLER_DDIM || sampler == SDCL_SAMPLER_LCM ? "leading" : "linspace",
               sizeof s->c.spacing);
  s->t = g_new0 (gdouble, steps);
  if (uses_sigmas (sampler))
    s->sigma = g_new0 (gdouble, steps + 1);
  switch (sampler)
    {
    case SDCL_SAMPLER_EULER:
    case SDCL_SAMPLER_EULER_A:
      schedule_euler (s);
      break;
    case SDCL_SAMPLER_DPMPP_2M:
      schedule_dpm (s);
      break;
    case SDCL_SAMPLER_DDIM:
      schedule_ddim (s);
      break;
    case SDCL_SAMPLER_LCM:
      schedule_lcm (s);
      break;
    }
  if (s->sigma)
    for (guint k = 0; k <= steps; k++)
      s->sigma[k] = (gfloat) s->sigma[k];
  return s;
}

void
sdcl_scheduler_free (SdclScheduler *s)
{
  if (!s)
    return;
  g_free (s->t);
  g_free (s->sigma);
  g_free (s->ac);
  g_free (s->prev_x0);
  g_free (s);
}

guint
sdcl_scheduler_set_strength (SdclScheduler *s, gdouble strength)
{
  const guint init = MIN ((guint) (s->n * CLAMP (strength, 0.0, 1.0)), s->n);
  s->first = s->n - init;
  return init;
}

guint
sdcl_scheduler_first (const SdclScheduler *s)
{
  return s->first;
}

guint
sdcl_scheduler_steps (const SdclScheduler *s)
{
  return s->n;
}

gdouble
sdcl_scheduler_timestep (const SdclScheduler *s, guint i)
{
  return s->t[MIN (i, s->n - 1)];
}

gdouble
sdcl_scheduler_sigma (const SdclScheduler *s, guint i)
{
  return s->sigma ? s->sigma[MIN (i, s->n)] : 0.0;
}

gdouble
sdcl_scheduler_init_noise_sigma (const SdclScheduler *s)
{
  if (s->sampler != SDCL_SAMPLER_EULER && s->sampler != SDCL_SAMPLER_EULER_A)
    return 1.0;
  gdouble max = 0;
  for (guint k = 0; k <= s->n; k++)
    max = MAX (max, s->sigma[k]);
  if (g_str_equal (s->c.spacing, "linspace") || g_str_equal (s->c.spacing, "trailing"))
    return max;
  return (gfloat) sqrt (max * max + 1);
}

gdouble
sdcl_scheduler_input_scale (const SdclScheduler *s, guint i)
{
  if (s->sampler != SDCL_SAMPLER_EULER && s->sampler != SDCL_SAMPLER_EULER_A)
    return 1.0;
  const gdouble sigma = s->sigma[MIN (i, s->n)];
  return 1.0 / sqrt (sigma * sigma + 1);
}

/* the variance-preserving alpha and sigma of a k-diffusion sigma */
static void
vp_of_sigma (gdouble sigma, gdouble *alpha_t, gdouble *sigma_t)
{
  *alpha_t = 1.0 / sqrt (sigma * sigma + 1);
  *sigma_t = sigma * *alpha_t;
}

static gdouble
alpha_cumprod_at (const SdclScheduler *s, gdouble t)
{
  if (t < 0)
    return s->final_ac;
  return s->ac[MIN ((guint) t, s->c.train_steps - 1)];
}

void
sdcl_scheduler_add_noise (const SdclScheduler *s, guint i, const gfloat *x0, const gfloat *noise,
                          gfloat *out, gsize n)
{
  if (i >= s->n)
    {
      memmove (out, x0, n * sizeof *out);
      return;
    }
  gdouble a, b;
  switch (s->sampler)
    {
    case SDCL_SAMPLER_EULER:
    case SDCL_SAMPLER_EULER_A:
      a = 1.0;
      b = s->sigma[i];
      break;
    case SDCL_SAMPLER_DPMPP_2M:
      vp_of_sigma (s->sigma[i], &a, &b);
      break;
    default:
      {
        const gdouble ac = alpha_cumprod_at (s, s->t[i]);
        a = sqrt (ac);
        b = sqrt (1 - ac);
      }
      break;
    }
  for (gsize k = 0; k < n; k++)
    out[k] = (gfloat) (a * x0[k] + b * noise[k]);
}

/* ---- steps ------------------------------------------------------------------------------ */

/* x0 from a k-diffusion sample at sigma */
static void
x0_of_sigma (SdclPrediction p, gdouble sigma, const gfloat *out, const gfloat *sample, gfloat *x0,
             gsize n)
{
  if (p == SDCL_PREDICTION_EPSILON)
    for (gsize k = 0; k < n; k++)
      x0[k] = sample[k] - (gfloat) sigma * out[k];
  else
    {
      const gdouble c_out = -sigma / sqrt (sigma * sigma + 1), c_in = 1.0 / (sigma * sigma + 1);
      for (gsize k = 0; k < n; k++)
        x0[k] = (gfloat) (out[k] * c_out + sample[k] * c_in);
    }
}

/* x0 and epsilon from a variance-preserving sample with alpha_cumprod ac;
 * x0 clamped where the config asks (epsilon then from the unclamped x0, as
 * diffusers' DDIM keeps it) */
static void
x0_of_alpha (const SdclScheduleConfig *c, gdouble ac, const gfloat *out, const gfloat *sample, gfloat *x0,
             gfloat *eps, gsize n)
{
  const gdouble a = sqrt (ac), b = sqrt (1 - ac);
  const SdclPrediction p = c->prediction;
  for (gsize k = 0; k < n; k++)
    {
      if (p == SDCL_PREDICTION_EPSILON)
        {
          x0[k] = (gfloat) ((sample[k] - b * out[k]) / a);
          if (eps)
            eps[k] = out[k];
        }
      else
        {
          x0[k] = (gfloat) (a * sample[k] - b * out[k]);
          if (eps)
            eps[k] = (gfloat) (a * out[k] + b * sample[k]);
        }
      if (c->clip_sample)
        x0[k] = CLAMP (x0[k], -c->clip_sample_range, c->clip_sample_range);
    }
}

static void
step_euler (SdclScheduler *s, guint i, const gfloat *out, gfloat *sample, SdclRng *rng, gfloat *x0,
            gsize n)
{
  const gdouble sigma = s->sigma[i], next = s->sigma[i + 1];
  x0_of_sigma (s->c.prediction, sigma, out, sample, x0, n);
  gdouble to = next, up = 0;
  if (s->sampler == SDCL_SAMPLER_EULER_A)
    {
      up = sqrt (next * next * (sigma * sigma - next * next) / (sigma * sigma));
      to = sqrt (next * next - up * up);
    }
  const gfloat dt = (gfloat) (to - sigma);
  for (gsize k = 0; k < n; k++)
    {
      const gfloat d = (sample[k] - x0[k]) / (gfloat) sigma;
      sample[k] = sample[k] + d * dt;
    }
  if (s->sampler == SDCL_SAMPLER_EULER_A)
    {
      g_autofree gfloat *noise = g_new (gfloat, n);
      sdcl_rng_randn (rng, noise, n);
      for (gsize k = 0; k < n; k++)
        sample[k] = sample[k] + noise[k] * (gfloat) up;
    }
}

static void
step_ddim (SdclScheduler *s, guint i, const gfloat *out, gfloat *sample, SdclRng *rng, gfloat *x0,
           gsize n)
{
  const gdouble t = s->t[i];
  const gdouble ac = alpha_cumprod_at (s, t);
  const gdouble ac_prev = alpha_cumprod_at (s, t - (gdouble) (s->c.train_steps / s->n));
  g_autofree gfloat *eps = g_new (gfloat, n);
  x0_of_alpha (&s->c, ac, out, sample, x0, eps, n);
  const gdouble variance = (1 - ac_prev) / (1 - ac) * (1 - ac / ac_prev);
  const gdouble std = s->eta * sqrt (variance);
  const gdouble dir = sqrt (1 - ac_prev - std * std), a_prev = sqrt (ac_prev);
  for (gsize k = 0; k < n; k++)
    sample[k] = (gfloat) (a_prev * x0[k] + dir * eps[k]);
  if (s->eta > 0)
    {
      g_autofree gfloat *noise = g_new (gfloat, n);
      sdcl_rng_randn (rng, noise, n);
      for (gsize k = 0; k < n; k++)
        sample[k] = sample[k] + (gfloat) std * noise[k];
    }
}

static void
step_dpm (SdclScheduler *s, guint i, const gfloat *out, gfloat *sample, gfloat *x0, gsize n)
{
  gdouble alpha_s, sigma_s, alpha_t, sigma_t;
  vp_of_sigma (s->sigma[i], &alpha_s, &sigma_s);
  vp_of_sigma (s->sigma[i + 1], &alpha_t, &sigma_t);
  /* the model output as x0 */
  if (s->c.prediction == SDCL_PREDICTION_EPSILON)
    for (gsize k = 0; k < n; k++)
      x0[k] = (gfloat) ((sample[k] - sigma_s * out[k]) / alpha_s);
  else
    for (gsize k = 0; k < n; k++)
      x0[k] = (gfloat) (alpha_s * sample[k] - sigma_s * out[k]);

  /* the last step is first order (final sigma 0): it lands on x0 */
  const gboolean first_order = s->lower_order_nums < 1 || i == s->n - 1;
  if (sigma_t == 0)
    memcpy (sample, x0, n * sizeof *sample);
  else
    {
      const gdouble lambda_s = log (alpha_s) - log (sigma_s);
      const gdouble lambda_t = log (alpha_t) - log (sigma_t);
      const gdouble h = lambda_t - lambda_s;
      const gdouble c_sample = sigma_t / sigma_s, c_x0 = alpha_t * (exp (-h) - 1.0);
      if (first_order)
        for (gsize k = 0; k < n; k++)
          sample[k] = (gfloat) (c_sample * sample[k] - c_x0 * x0[k]);
      else
        {
          gdouble alpha_s1, sigma_s1;
          vp_of_sigma (s->sigma[i - 1], &alpha_s1, &sigma_s1);
          const gdouble lambda_s1 = log (alpha_s1) - log (sigma_s1);
          const gdouble r0 = (lambda_s - lambda_s1) / h;
          for (gsize k = 0; k < n; k++)
            {
              const gdouble d1 = (1.0 / r0) * (x0[k] - s->prev_x0[k]);
              sample[k] = (gfloat) (c_sample * sample[k] - c_x0 * x0[k] - 0.5 * c_x0 * d1);
            }
        }
    }
  if (!s->prev_x0)
    s->prev_x0 = g_new (gfloat, n);
  memcpy (s->prev_x0, x0, n * sizeof *x0);
  s->lower_order_nums = MIN (s->lower_order_nums + 1, 2);
}

static void
step_lcm (SdclScheduler *s, guint i, const gfloat *out, gfloat *sample, SdclRng *rng, gfloat *x0,
          gsize n)
{
  const gdouble t = s->t[i];
  const gdouble t_prev = i + 1 < s->n ? s->t[i + 1] : t;
  const gdouble ac = alpha_cumprod_at (s, t), ac_prev = alpha_cumprod_at (s, t_prev);
  const gdouble sigma_data = 0.5, scaled = t * s->c.lcm_timestep_scaling;
  const gdouble c_skip = sigma_data * sigma_data / (scaled * scaled + sigma_data * sigma_data);
  const gdouble c_out = scaled / sqrt (scaled * scaled + sigma_data * sigma_data);
  x0_of_alpha (&s->c, ac, out, sample, x0, NULL, n);
  for (gsize k = 0; k < n; k++)
    x0[k] = (gfloat) (c_out * x0[k] + c_skip * sample[k]);
  if (i != s->n - 1)
    {
      g_autofree gfloat *noise = g_new (gfloat, n);
      sdcl_rng_randn (rng, noise, n);
      const gdouble a = sqrt (ac_prev), b = sqrt (1 - ac_prev);
      for (gsize k = 0; k < n; k++)
        sample[k] = (gfloat) (a * x0[k] + b * noise[k]);
    }
  else
    memcpy (sample, x0, n * sizeof *sample);
}

void
sdcl_scheduler_step (SdclScheduler *s, guint i, const gfloat *model_output, gfloat *sample,
                     SdclRng *rng, gfloat *denoised, gsize n)
{
  g_return_if_fail (i < s->n);
  g_autofree gfloat *scratch = denoised ? NULL : g_new (gfloat, n);
  gfloat *x0 = denoised ? denoised : scratch;
  switch (s->sampler)
    {
    case SDCL_SAMPLER_EULER:
    case SDCL_SAMPLER_EULER_A:
      step_euler (s, i, model_output, sample, rng, x0, n);
      break;
    case SDCL_SAMPLER_DDIM:
      step_ddim (s, i, model_output, sample, rng, x0, n);
      break;
    case SDCL_SAMPLER_DPMPP_2M:
      step_dpm (s, i, model_output, sample, x0, n);
      break;
    case SDCL_SAMPLER_LCM:
      step_lcm (s, i, model_output, sample, rng, x0, n);
      break;
    }
}

/* ---- names --------------------------------------------------------------------------- */

typedef struct
{
  const gchar *name;          /* engine name */
  const gchar *display;       /* sd-webui's */
  SdclSampler  sampler;
  SdclSchedule schedule;
} SamplerName;

static const SamplerName sampler_names[] = {
  { "euler", "Euler", SDCL_SAMPLER_EULER, SDCL_SCHEDULE_DEFAULT },
  { "euler_karras", "Euler Karras", SDCL_SAMPLER_EULER, SDCL_SCHEDULE_KARRAS },
  { "euler_a", "Euler a", SDCL_SAMPLER_EULER_A, SDCL_SCHEDULE_DEFAULT },
  { "euler_a_karras", "Euler a Karras", SDCL_SAMPLER_EULER_A, SDCL_SCHEDULE_KARRAS },
  { "ddim", "DDIM", SDCL_SAMPLER_DDIM, SDCL_SCHEDULE_DEFAULT },
  { "dpmpp_2m", "DPM++ 2M", SDCL_SAMPLER_DPMPP_2M, SDCL_SCHEDULE_DEFAULT },
  { "dpmpp_2m_karras", "DPM++ 2M Karras", SDCL_SAMPLER_DPMPP_2M, SDCL_SCHEDULE_KARRAS },
  { "lcm", "LCM", SDCL_SAMPLER_LCM, SDCL_SCHEDULE_DEFAULT },
};

gboolean
sdcl_sampler_from_name (const gchar *name, SdclSampler *sampler, SdclSchedule *schedule,
                        GError **error)
{
  for (guint i = 0; name && i < G_N_ELEMENTS (sampler_names); i++)
    if (g_ascii_strcasecmp (name, sampler_names[i].name) == 0
        || g_ascii_strcasecmp (name, sampler_names[i].display) == 0)
      {
        *sampler = sampler_names[i].sampler;
        *schedule = sampler_names[i].schedule;
        return TRUE;
      }
  g_autoptr (GString) known = g_string_new (NULL);
  for (guint i = 0; i < G_N_ELEMENTS (sampler_names); i++)
    g_string_append_printf (known, "%s%s", i ? ", " : "", sampler_names[i].name);
  g_set_error (error, SDCL_REQUEST_ERROR, SDCL_REQUEST_ERROR_INVALID,
               "unknown sampler \"%s\"; known: %s", name ? name : "", known->str);
  return FALSE;
}

const gchar *
sdcl_sampler_name (SdclSampler sampler, SdclSchedule schedule)
{
  for (guint i = 0; i < G_N_ELEMENTS (sampler_names); i++)
    if (sampler_names[i].sampler == sampler && sampler_names[i].schedule == schedule)
      return sampler_names[i].name;
  return "unknown";
}

const gchar *
sdcl_sampler_display_name (SdclSampler sampler)
{
  for (guint i = 0; i < G_N_ELEMENTS (sampler_names); i++)
    if (sampler_names[i].sampler == sampler && sampler_names[i].schedule == SDCL_SCHEDULE_DEFAULT)
      return sampler_names[i].display;
  return "unknown";
}
