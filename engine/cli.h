/* cli.h — the sdcl command-line tool's commands beyond main.c (internal). */
#pragma once

#include "sdcl.h"

/* `sdcl generate`, `sdcl img2img`, `sdcl inpaint` (by `mode`): argv[0] is the
 * command's name. Returns the exit status: 0 done, 1 a model, file or
 * runtime error (or Ctrl-C), 2 bad arguments. */
int sdcl_cli_generate (SdclMode mode, int argc, char **argv);
