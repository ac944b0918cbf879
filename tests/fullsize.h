/* fullsize.h — random weights of a real architecture, from a seed: the
 * tool both the engine's full-size checks and the diffusers reference
 * (tests/reference/make_fullsize_reference.py reads the file) use, so no
 * 2 GB file is ever committed or downloaded.
 */
#pragma once

#include <glib.h>

/* Writes a single-file checkpoint in the original SD layout, every tensor
 * the architecture in `config_dir` (unet.json, vae.json, text_encoder.json
 * as diffusers writes them) needs, f16, values from the seeded formula of
 * tests/reference/README.md with a per-tensor seed from its name:
 *   seed(name) = h(...h(h(0x5d5c1) ^ b0) ^ b1 ... ^ bn)  over the name's bytes
 *   weights (2+ dims): scale 1/sqrt(fan_in), offset 0
 *   1-dim tensors whose engine (diffusers) name is *norm*.weight: scale 0.1,
 *   offset 1 (the resnets' in_layers.0 are norm1); other 1-dim: scale 0.1
 * Like real SD 1.x files it has no architecture metadata; linear layers
 * that SD 1.x stores as 1x1 convolutions are stored so. */
gboolean sdcl_test_write_random_model (const gchar *config_dir, const gchar *path, GError **error);

/* The per-tensor seed above. */
guint32 sdcl_test_name_seed (const gchar *name);
