/* test-default-model.c — the shipped model, models/sdcl-shapes.safetensors,
 * run through the engine as a user runs it (sdcl_generate with the
 * request's defaults: Euler a, 20 steps, CFG 7.5), judged by what it draws:
 *
 *  - colour: "a <colour> circle" for 8 colours over 10 seeds: the dominant
 *    colour that is not the background's is the named one in at least 9;
 *  - position: "a <colour> square on the left / right / top / bottom": the
 *    centroid of the named colour lies in the named half in at least 8 of
 *    10 seeds, for each side;
 *  - inpaint: a masked square of a plain picture repainted with "a <colour>
 *    square" (red, green, blue, yellow) takes that colour over a quarter of
 *    the mask or more in at least 9 of 10 seeds, and every pixel outside the
 *    mask keeps its value;
 *  - judge: the reading itself, on 256 pictures with a known answer.
 *
 * Inpainting runs the shipped inpainting variant,
 * models/sdcl-shapes-inpainting.safetensors (a 9-channel UNet), where it
 * exists, as the CLI and the plug-in do; else the base model through
 * latent blending.
 *
 * SDCL_TEST_MODEL=file judges another file instead of the shipped one,
 * SDCL_TEST_INPAINT_MODEL=file another inpainting model,
 * SDCL_TEST_SEED_SHIFT=n other seeds.
 *
 * A case under its bar fails without stopping the others, so one run
 * gives every count.
 *
 * Pixels are classified by the nearest of the training data's 12 colours
 * (models/train/data.py, COLOURS) within a distance, so antialiased edges
 * count as no colour. Background pixels are found from the picture's
 * 2-pixel frame (see line_background): the data's backgrounds are plain or
 * a two-colour gradient along one axis, so each row or each column has one
 * background colour, shown by the frame at both of its ends; a pixel close
 * to its row's or column's background is background, wherever it lies in
 * the gradient and whatever palette colour its blend is nearest. Only a
 * picture without such lines falls back to colours: one that covers at
 * least 60 % of a side of the frame is background. /default-model/judge
 * checks this reading on training pictures whose answer is known
 * (tests/fixtures/default-model/judge.*), including objects on a gradient
 * that ends in their own colour, which a model may draw though the data
 * does not. Seeds are fixed, so each figure is the same on every run; the
 * counts are printed for the record.
 */
#include <math.h>
#include <string.h>

#include "model.h"
#include "sdcl.h"
#include "testutil.h"

#ifndef SDCL_SOURCE_DIR
#error "SDCL_SOURCE_DIR must be defined by the build"
#endif

#define SIDE    64
#define SEEDS   10
#define FRAME   2
#define NONE    (-1)

/* models/train/data.py COLOURS, in its order */
static const struct
{
  const gchar *name;
  guint8       rgb[3];
} palette[] = {
  { "red", { 220, 30, 35 } },     { "green", { 35, 160, 60 } },  { "blue", { 35, 75, 225 } },
  { "yellow", { 250, 215, 35 } }, { "orange", { 250, 135, 25 } }, { "purple", { 130, 45, 175 } },
  { "pink", { 250, 135, 195 } },  { "white", { 245, 245, 245 } }, { "black", { 18, 18, 18 } },
  { "cyan", { 40, 215, 225 } },   { "brown", { 125, 75, 35 } },  { "gray", { 128, 128, 128 } },
};
#define N_COLOURS G_N_ELEMENTS (palette)

/* A pixel counts as a palette colour within this RGB distance: about half
 * the distance between the two closest entries (orange and pink, 170). */
#define MATCH_DISTANCE 60.0

static SdclEngine *engine;
static SdclModel  *model;
/* SDCL_TEST_SEED_SHIFT=n adds n to every seed: other pictures than the
 * suite's own, to compare training checkpoints without choosing one by
 * the very seeds that then judge it */
static guint32     seed_shift;
static SdclModel  *inpaint_model;   /* the inpainting variant, or model */

static gint
colour_index (const gchar *name)
{
  for (guint i = 0; i < N_COLOURS; i++)
    if (g_strcmp0 (palette[i].name, name) == 0)
      return i;
  sdcl_test_fail ("no colour %s in the palette", name);
}

/* Euclidean in 8-bit RGB (exact: whole numbers far below 2^24) */
static gdouble
distance (const gfloat *a, const gfloat *b)
{
  return sqrt ((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1])
               + (a[2] - b[2]) * (a[2] - b[2]));
}

static gint
classify (const guint8 *p)
{
  const gfloat pf[3] = { p[0], p[1], p[2] };
  gint best = NONE;
  gdouble best_d = MATCH_DISTANCE;
  for (guint i = 0; i < N_COLOURS; i++)
    {
      const gfloat q[3] = { palette[i].rgb[0], palette[i].rgb[1], palette[i].rgb[2] };
      const gdouble d = distance (pf, q);
      if (d < best_d)
        best = i, best_d = d;
    }
  return best;
}

/* What a picture shows: per pixel its colour class and whether it is
 * background (by its line's background or, without lines, by its class),
 * which classes are the background's (the fallback only), and how many
 * pixels each class covers outside the background. */
typedef struct
{
  gint     cls[SIDE * SIDE];
  gboolean bg[SIDE * SIDE];
  const gchar *model;             /* how the background was found */
  gboolean background[N_COLOURS];
  guint    count[N_COLOURS];      /* pixels of each non-background class */
} Reading;

/* The ends of a line of the frame agree within this distance where the
 * line shows nothing but background; a pixel within BG_DISTANCE of its
 * line's background is background. */
#define AGREE_DISTANCE 40.0
#define BG_DISTANCE    40.0

/* The data's backgrounds (data.py, background()) are a plain colour or a
 * two-colour gradient along one axis: every row of a vertical gradient,
 * and every column of a horizontal one, has one colour, which the frame
 * shows at both ends of that line. This estimates each row's (rows) or
 * column's background from the mean of the frame at its two ends. A line
 * whose ends disagree (an object reaches the frame there) takes the
 * background interpolated between the nearest lines whose ends agree.
 * FALSE when too few lines agree: the background does not run along
 * that axis (the rows of a horizontal gradient). */
static gboolean
line_background (const SdclImage *im, gboolean rows, gfloat est[SIDE][3])
{
  gboolean ok[SIDE];
  guint agree = 0;
  for (guint i = 0; i < SIDE; i++)
    {
      gfloat end[2][3] = { { 0 } };
      for (guint e = 0; e < 2; e++)
        for (guint k = 0; k < FRAME; k++)
          {
            const guint along = e ? SIDE - 1 - k : k;
            const guint x = rows ? along : i, y = rows ? i : along;
            for (guint c = 0; c < 3; c++)
              end[e][c] += im->pixels[3 * (y * SIDE + x) + c] / (gfloat) FRAME;
          }
      ok[i] = distance (end[0], end[1]) < AGREE_DISTANCE;
      agree += ok[i];
      for (guint c = 0; c < 3; c++)
        est[i][c] = (end[0][c] + end[1][c]) / 2;
    }
  if (agree < SIDE / 4)
    return FALSE;
  for (guint i = 0; i < SIDE; i++)
    {
      if (ok[i])
        continue;
      gint lo = i, hi = i;
      while (lo >= 0 && !ok[lo])
        lo--;
      while (hi < SIDE && !ok[hi])
        hi++;
      for (guint c = 0; c < 3; c++)
        est[i][c] = lo < 0 ? est[hi][c]
                  : hi >= SIDE ? est[lo][c]
                  : est[lo][c] + (est[hi][c] - est[lo][c]) * (gfloat) (i - lo) / (hi - lo);
    }
  return TRUE;
}

static void
read_image (const SdclImage *im, Reading *r)
{
  g_assert_cmpuint (im->width, ==, SIDE);
  g_assert_cmpuint (im->height, ==, SIDE);
  memset (r, 0, sizeof *r);
  gfloat row_bg[SIDE][3], col_bg[SIDE][3];
  const gboolean by_row = line_background (im, TRUE, row_bg);
  const gboolean by_col = line_background (im, FALSE, col_bg);
  guint side[4][N_COLOURS] = { { 0 } };   /* top, bottom, left, right strips */
  for (guint y = 0; y < SIDE; y++)
    for (guint x = 0; x < SIDE; x++)
      {
        const guint8 *p = im->pixels + 3 * (y * SIDE + x);
        const gfloat pf[3] = { p[0], p[1], p[2] };
        const gint c = classify (p);
        r->cls[y * SIDE + x] = c;
        r->bg[y * SIDE + x] = (by_row && distance (pf, row_bg[y]) < BG_DISTANCE)
                              || (by_col && distance (pf, col_bg[x]) < BG_DISTANCE);
        if (c == NONE)
          continue;
        side[0][c] += y < FRAME;
        side[1][c] += y >= SIDE - FRAME;
        side[2][c] += x < FRAME;
        side[3][c] += x >= SIDE - FRAME;
      }
  /* Without a line model (a background the data does not draw), every
   * colour that covers at least 60 % of one side of the frame is taken for
   * background. */
  r->model = by_row && by_col ? "plain" : by_row ? "by rows" : by_col ? "by columns" : "frame colours";
  if (!by_row && !by_col)
    for (guint i = 0; i < N_COLOURS; i++)
      for (guint k = 0; k < 4; k++)
        r->background[i] |= side[k][i] * 5 >= FRAME * SIDE * 3;
  for (guint i = 0; i < SIDE * SIDE; i++)
    {
      r->bg[i] |= r->cls[i] != NONE && r->background[r->cls[i]];
      if (r->cls[i] != NONE && !r->bg[i])
        r->count[r->cls[i]]++;
    }
}

/* The most frequent non-background colour, or NONE when nothing but
 * background (fewer than 20 pixels) is drawn. */
static gint
dominant (const Reading *r)
{
  gint best = NONE;
  guint most = 19;
  for (guint i = 0; i < N_COLOURS; i++)
    if (r->count[i] > most)
      best = i, most = r->count[i];
  return best;
}

static gchar *
describe (const Reading *r)
{
  GString *s = g_string_new ("background ");
  g_string_append (s, r->model);
  for (guint i = 0; i < N_COLOURS; i++)
    if (r->background[i])
      g_string_append_printf (s, " %s", palette[i].name);
  g_string_append (s, "; drawn");
  for (guint i = 0; i < N_COLOURS; i++)
    if (r->count[i])
      g_string_append_printf (s, " %s %u", palette[i].name, r->count[i]);
  return g_string_free (s, FALSE);
}

/* SEEDS pictures of one prompt, seeds seed0 ... seed0 + SEEDS - 1. */
static GPtrArray *
generate (const gchar *prompt, guint32 seed0)
{
  g_autoptr (GError) error = NULL;
  SdclRequest req;
  sdcl_request_init (&req);
  req.prompt = prompt;
  req.seed = seed0 + seed_shift;
  req.batch_count = SEEDS;
  GPtrArray *images = sdcl_generate (model, &req, NULL, NULL, &error);
  if (!images)
    sdcl_test_fail ("\"%s\": %s", prompt, error->message);
  g_assert_cmpuint (images->len, ==, SEEDS);
  return images;
}

/* Writes the pictures of a case side by side when SDCL_TEST_KEEP names a
 * folder, to look at what the model drew. */
static void
keep (const gchar *name, GPtrArray *images)
{
  const gchar *dir = g_getenv ("SDCL_TEST_KEEP");
  if (!dir || !*dir)
    return;
  const guint n = images->len, w = SIDE * n;
  g_autofree guint8 *strip = g_malloc (w * SIDE * 3);
  for (guint i = 0; i < n; i++)
    {
      const SdclImage *im = images->pdata[i];
      for (guint y = 0; y < SIDE; y++)
        memcpy (strip + 3 * (y * w + i * SIDE), im->pixels + 3 * y * SIDE, 3 * SIDE);
    }
  g_autofree gchar *file = g_strdelimit (g_strdup_printf ("%s.png", name), " /", '-');
  g_autofree gchar *path = g_build_filename (dir, file, NULL);
  g_autoptr (GError) error = NULL;
  if (!sdcl_png_write (path, w, SIDE, 3, strip, NULL, &error))
    g_printerr ("# could not keep %s: %s\n", path, error->message);
}

/* ---- colour -------------------------------------------------------------- */

static const gchar *colour_names[] = {
  "red", "green", "blue", "yellow", "orange", "purple", "pink", "black",
};

static void
test_colour (gconstpointer data)
{
  const gchar *colour = data;
  const gint want = colour_index (colour);
  g_autofree gchar *prompt = g_strdup_printf ("a %s circle", colour);
  g_autoptr (GPtrArray) images = generate (prompt, 1000 + 37 * want);
  keep (prompt, images);
  guint right = 0;
  for (guint i = 0; i < images->len; i++)
    {
      Reading r;
      read_image (images->pdata[i], &r);
      const gint got = dominant (&r);
      g_autofree gchar *what = describe (&r);
      g_test_message ("\"%s\" seed %u: %s (%s)", prompt, ((SdclImage *) images->pdata[i])->seed,
                      got == NONE ? "nothing" : palette[got].name, what);
      right += got == want;
    }
  g_test_message ("\"%s\": %u of %u seeds", prompt, right, images->len);
  if (right < 9)
    g_test_fail_printf ("\"%s\": the dominant colour was %s in %u of %u seeds, want at least 9",
                        prompt, colour, right, images->len);
}

/* ---- the judge itself ----------------------------------------------------------- */

/* The reading on pictures with a known answer: training pictures of one
 * object in one of the suite's colours on the data's own backgrounds
 * (tests/fixtures/default-model/judge.png and .txt, made by
 * tests/reference/make_judge_fixture.py). The dominant colour must be the
 * object's in every one, or the other cases would count the reading's
 * mistakes as the model's. */
static void
test_judge (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *png = g_build_filename (SDCL_SOURCE_DIR, "tests", "fixtures", "default-model",
                                            "judge.png", NULL);
  g_autofree gchar *txt = g_build_filename (SDCL_SOURCE_DIR, "tests", "fixtures", "default-model",
                                            "judge.txt", NULL);
  guint w, h;
  g_autofree guint8 *grid = sdcl_png_read_rgb (png, &w, &h, &error);
  g_assert_no_error (error);
  g_autofree gchar *text = NULL;
  g_assert_true (g_file_get_contents (txt, &text, NULL, NULL));
  g_auto (GStrv) lines = g_strsplit (g_strstrip (text), "\n", -1);
  const guint per_row = w / SIDE, n = g_strv_length (lines);
  g_assert_cmpuint (w % SIDE, ==, 0);
  g_assert_cmpuint (n, ==, per_row * (h / SIDE));
  guint right = 0;
  for (guint i = 0; i < n; i++)
    {
      SdclImage im = { .width = SIDE, .height = SIDE };
      g_autofree guint8 *pixels = g_malloc (SIDE * SIDE * 3);
      const guint x0 = i % per_row * SIDE, y0 = i / per_row * SIDE;
      for (guint y = 0; y < SIDE; y++)
        memcpy (pixels + 3 * y * SIDE, grid + 3 * ((y0 + y) * w + x0), 3 * SIDE);
      im.pixels = pixels;
      g_auto (GStrv) f = g_strsplit (lines[i], "\t", 2);
      Reading r;
      read_image (&im, &r);
      const gint got = dominant (&r);
      g_autofree gchar *what = describe (&r);
      if (got != colour_index (f[0]))
        g_test_message ("judge %u \"%s\": read %s (%s)", i, f[1],
                        got == NONE ? "nothing" : palette[got].name, what);
      right += got == colour_index (f[0]);
    }
  g_test_message ("judge: %u of %u pictures read right", right, n);
  if (right != n)
    g_test_fail_printf ("the reading named the object's colour in %u of %u training pictures",
                        right, n);
}

/* ---- position ------------------------------------------------------------- */

typedef struct
{
  const gchar *side;
  gboolean     vertical;   /* top/bottom: the centroid's y, else its x */
  gboolean     low;        /* left/top: below the middle */
} Side;

static const Side sides[] = {
  { "left", FALSE, TRUE }, { "right", FALSE, FALSE },
  { "top", TRUE, TRUE },   { "bottom", TRUE, FALSE },
};

static const gchar *position_colours[] = { "red", "blue", "green", "yellow", "purple" };

static void
test_position (gconstpointer data)
{
  const Side *side = data;
  guint right = 0, total = 0;
  g_autoptr (GPtrArray) all = g_ptr_array_new_with_free_func ((GDestroyNotify) sdcl_image_free);
  /* SEEDS pictures per side, the colour changing every other seed */
  for (guint c = 0; c < G_N_ELEMENTS (position_colours); c++)
    {
      const gint want = colour_index (position_colours[c]);
      g_autofree gchar *prompt = g_strdup_printf ("a %s square %s %s", position_colours[c],
                                                  side->vertical ? "at the" : "on the",
                                                  side->side);
      g_autoptr (GError) error = NULL;
      SdclRequest req;
      sdcl_request_init (&req);
      req.prompt = prompt;
      req.seed = 2000 + 100 * (side - sides) + 10 * c + seed_shift;
      req.batch_count = SEEDS / G_N_ELEMENTS (position_colours);
      g_autoptr (GPtrArray) images = sdcl_generate (model, &req, NULL, NULL, &error);
      if (!images)
        sdcl_test_fail ("\"%s\": %s", prompt, error->message);
      for (guint i = 0; i < images->len; i++)
        {
          Reading r;
          read_image (images->pdata[i], &r);
          gdouble sum = 0;
          guint n = 0;
          for (guint p = 0; p < SIDE * SIDE; p++)
            if (r.cls[p] == want && !r.bg[p])
              {
                sum += side->vertical ? p / SIDE : p % SIDE;
                n++;
              }
          const gdouble centroid = n ? sum / n + 0.5 : -1;
          const gboolean ok = n >= 20 && (side->low ? centroid < SIDE / 2.0
                                                    : centroid > SIDE / 2.0);
          g_test_message ("\"%s\" seed %u: %u pixels of %s, centroid %s %.1f: %s", prompt,
                          ((SdclImage *) images->pdata[i])->seed, n, position_colours[c],
                          side->vertical ? "y" : "x", centroid, ok ? "yes" : "no");
          right += ok;
          total++;
        }
      g_ptr_array_extend_and_steal (all, g_steal_pointer (&images));
    }
  g_autofree gchar *label = g_strdup_printf ("a square %s %s (red blue green yellow purple)",
                                             side->vertical ? "at the" : "on the", side->side);
  keep (label, all);
  g_test_message ("on the %s: %u of %u seeds", side->side, right, total);
  if (right * 5 < total * 4)
    g_test_fail_printf ("\"... %s\": the shape was in the named half in %u of %u seeds, want 80 %%",
                        side->side, right, total);
}

/* ---- inpaint --------------------------------------------------------------- */

static const gchar *inpaint_colours[] = { "red", "green", "blue", "yellow" };

static void
test_inpaint (gconstpointer data)
{
  const gchar *colour = data;
  /* a plain white picture with a black circle on the left; the mask is a
   * square on the right, repainted with a square of the colour */
  g_autofree guint8 *init = g_malloc (SIDE * SIDE * 3);
  g_autofree guint8 *mask = g_malloc0 (SIDE * SIDE);
  const guint m0 = 32, m1 = 60, n0 = 18, n1 = 46;   /* mask x m0..m1-1, y n0..n1-1 */
  for (guint y = 0; y < SIDE; y++)
    for (guint x = 0; x < SIDE; x++)
      {
        const gdouble dx = x + 0.5 - 17, dy = y + 0.5 - 32;
        const guint8 *c = dx * dx + dy * dy < 100 ? palette[colour_index ("black")].rgb
                                                  : palette[colour_index ("white")].rgb;
        memcpy (init + 3 * (y * SIDE + x), c, 3);
        if (x >= m0 && x < m1 && y >= n0 && y < n1)
          mask[y * SIDE + x] = 255;
      }
  const gint want = colour_index (colour);
  g_autofree gchar *prompt = g_strdup_printf ("a %s square", colour);
  SdclRequest req;
  sdcl_request_init (&req);
  req.mode = SDCL_MODE_INPAINT;
  req.prompt = prompt;
  req.strength = 1.0;
  req.init_image = init;
  req.init_width = req.init_height = SIDE;
  req.mask = mask;
  req.seed = 3000 + seed_shift;
  req.batch_count = SEEDS;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) images = sdcl_generate (inpaint_model, &req, NULL, NULL, &error);
  if (!images)
    sdcl_test_fail ("inpaint: %s", error->message);
  g_autofree gchar *label = g_strdup_printf ("inpaint %s", prompt);
  keep (label, images);
  guint right = 0;
  for (guint i = 0; i < images->len; i++)
    {
      const SdclImage *im = images->pdata[i];
      guint inside = 0, hit = 0, changed_outside = 0;
      for (guint p = 0; p < SIDE * SIDE; p++)
        if (mask[p])
          {
            inside++;
            hit += classify (im->pixels + 3 * p) == want;
          }
        else
          changed_outside += memcmp (im->pixels + 3 * p, init + 3 * p, 3) != 0;
      if (changed_outside)
        g_test_fail_printf ("inpaint seed %u: %u pixels outside the mask changed", im->seed,
                            changed_outside);
      const gboolean ok = hit * 4 >= inside;
      g_test_message ("inpaint seed %u: %u of %u masked pixels %s: %s", im->seed, hit, inside,
                      colour, ok ? "yes" : "no");
      right += ok;
    }
  g_test_message ("inpaint: %u of %u seeds", right, images->len);
  if (right < 9)
    g_test_fail_printf ("inpaint \"%s\": a quarter of the mask or more was %s in %u of "
                        "%u seeds, want at least 9", prompt, colour, right, images->len);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_autoptr (GError) error = NULL;
  const gchar *shift = g_getenv ("SDCL_TEST_SEED_SHIFT");
  seed_shift = shift ? (guint32) g_ascii_strtoull (shift, NULL, 10) : 0;
  /* SDCL_TEST_MODEL judges a candidate (a checkpoint exported elsewhere
   * while training) by the same measures before it replaces the shipped file */
  g_autofree gchar *path = g_getenv ("SDCL_TEST_MODEL") && *g_getenv ("SDCL_TEST_MODEL")
    ? g_strdup (g_getenv ("SDCL_TEST_MODEL"))
    : g_build_filename (SDCL_SOURCE_DIR, "models", "sdcl-shapes.safetensors", NULL);
  engine = sdcl_engine_new (NULL, &error);
  if (!engine)
    sdcl_test_fail ("no OpenCL device: %s", error->message);
  model = sdcl_model_load (engine, path, NULL, &error);
  if (!model)
    sdcl_test_fail ("%s: %s", path, error->message);
  const gchar *env = g_getenv ("SDCL_TEST_INPAINT_MODEL");
  g_autofree gchar *inpaint_path = env && *env
    ? g_strdup (env)
    : g_build_filename (SDCL_SOURCE_DIR, "models", "sdcl-shapes-inpainting.safetensors", NULL);
  if ((env && *env) || g_file_test (inpaint_path, G_FILE_TEST_EXISTS))
    {
      inpaint_model = sdcl_model_load (engine, inpaint_path, NULL, &error);
      if (!inpaint_model)
        sdcl_test_fail ("%s: %s", inpaint_path, error->message);
      g_test_message ("inpainting with %s", inpaint_path);
    }

  g_test_add_func ("/default-model/judge", test_judge);
  for (guint i = 0; i < G_N_ELEMENTS (colour_names); i++)
    {
      g_autofree gchar *name = g_strdup_printf ("/default-model/colour/%s", colour_names[i]);
      g_test_add_data_func (name, colour_names[i], test_colour);
    }
  for (guint i = 0; i < G_N_ELEMENTS (sides); i++)
    {
      g_autofree gchar *name = g_strdup_printf ("/default-model/position/%s", sides[i].side);
      g_test_add_data_func (name, &sides[i], test_position);
    }
  for (guint i = 0; i < G_N_ELEMENTS (inpaint_colours); i++)
    {
      g_autofree gchar *name = g_strdup_printf ("/default-model/inpaint/%s", inpaint_colours[i]);
      g_test_add_data_func (name, inpaint_colours[i], test_inpaint);
    }
  if (!inpaint_model)
    inpaint_model = model;
  const int status = g_test_run ();
  if (inpaint_model != model)
    sdcl_model_free (inpaint_model);
  sdcl_model_free (model);
  sdcl_engine_free (engine);
  return status;
}
