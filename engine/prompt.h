/* prompt.h — prompts as AUTOMATIC1111's web UI reads them (internal):
 * emphasis — (text) ×1.1, [text] ÷1.1, (text:1.3), nested, \( escaped —
 * the BREAK keyword, and long prompts cut into 75-token chunks (backing up
 * to a comma near the end), each wrapped as start … end and padded to 77.
 * The reference is modules/prompt_parser.py (parse_prompt_attention) and
 * modules/sd_hijack_clip.py (tokenize_line) of stable-diffusion-webui.
 */
#pragma once

#include "tokenizer.h"

#define SDCL_PROMPT_CHUNK      75       /* tokens per chunk */
#define SDCL_PROMPT_BACKTRACK  20       /* a comma this near a full chunk's end moves the rest on */
#define SDCL_PROMPT_MAX_CHUNKS 64       /* 4,800 tokens: more is refused */
#define SDCL_PROMPT_BREAK      (-1.0)   /* the weight of a BREAK segment */

typedef struct
{
  gchar  *text;
  gdouble weight;              /* SDCL_PROMPT_BREAK for BREAK */
} SdclPromptSegment;

/* Text segments with their weights, neighbours of equal weight merged. An
 * empty prompt gives one empty segment of weight 1. Where A1111 fails on a
 * weight Python's float() cannot read ("(a:1.2.3)"), the colon is read as
 * text, as in "(a:bad)". */
GArray *sdcl_prompt_parse (const gchar *prompt);

typedef struct
{
  guint   n_chunks;
  guint   n_tokens;            /* prompt tokens, without start/end/padding */
  gint32 *ids;                 /* [n_chunks][77] */
  gfloat *weights;             /* [n_chunks][77], 1 for start, end and padding */
} SdclPromptChunks;

/* The prompt's chunks, at least `min_chunks` of them (empty chunks pad,
 * so a negative prompt can match the positive one's count). */
SdclPromptChunks *sdcl_prompt_chunks_new (const gchar *prompt, guint min_chunks, GError **error);
void sdcl_prompt_chunks_free (SdclPromptChunks *chunks);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclPromptChunks, sdcl_prompt_chunks_free)
