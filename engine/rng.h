/* rng.h — PyTorch's CPU random generator, bit for bit (internal): what
 * diffusers draws with g = torch.Generator("cpu").manual_seed(seed) and
 * repeated torch.randn(shape, generator=g, dtype=torch.float32) calls —
 * the initial latent, ancestral samplers' per-step noise, and the VAE's
 * latent sampling (mean + std * randn).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _SdclRng SdclRng;

/* Which of torch's float32 Box–Muller kernels to reproduce. They draw the
 * same uniforms and differ in the last bits of the normals. */
typedef enum
{
  /* normal_fill_16_AVX2 with the Cephes-derived log/sincos polynomials of
   * ATen's avx_mathfun.h, fused multiply-adds where GCC fuses them: what
   * torch 2.x uses on every x86-64 CPU with AVX2 (AVX-512 CPUs too — the
   * normal kernel is registered without an AVX-512 version). */
  SDCL_RNG_TORCH_AVX2,
  /* The scalar normal_fill with libm logf/cosf/sinf: torch with
   * ATEN_CPU_CAPABILITY=default, or without AVX2 (older CPUs, ARM). */
  SDCL_RNG_TORCH_SCALAR,
} SdclRngFlavor;

/* = torch.Generator("cpu").manual_seed(seed): mt19937 seeded with the low
 * 32 bits of seed (a negative Python seed is its two's complement). */
SdclRng *sdcl_rng_new (guint64 seed);
SdclRng *sdcl_rng_new_full (guint64 seed, SdclRngFlavor flavor);
void     sdcl_rng_free (SdclRng *rng);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SdclRng, sdcl_rng_free)

/* = torch.randn(n, generator=g, dtype=torch.float32) into out[n] (any
 * shape: C order), consuming the generator as torch does: n >= 16 draws
 * n float uniforms (plus 16 more when n % 16 != 0), n < 16 goes element by
 * element through a double Box–Muller whose second value the generator
 * keeps for the next such element, across calls. */
void     sdcl_rng_randn (SdclRng *rng, gfloat *out, gsize n);

/* The next raw 32-bit mt19937 output (torch's generator->random()). */
guint32  sdcl_rng_random (SdclRng *rng);

G_END_DECLS
