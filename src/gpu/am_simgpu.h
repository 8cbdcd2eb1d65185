/* am_simgpu: simulated GPUs declared on the command line, for tests and
 * demos on machines without GPUs. Spec: [NODE/]COUNTxSIZE[:NAME][@CC], e.g.
 * "4x11GiB:NVIDIA GeForce RTX 2080 Ti", "2x80GiB:NVIDIA H100 80GB HBM3@9.0" or
 * "node-b/8x80GiB:NVIDIA H100". SIZE takes MiB, GiB, TiB, MB, GB (a bare
 * number is GiB). NODE (letters, digits, . _ -; 1-63) names a simulated node
 * the cards are on: it ends at the first '/', before COUNT, so it never
 * meets the NAME, which only starts after the ':'. No NODE, or "local":
 * this machine's node. */
#ifndef AM_SIMGPU_H
#define AM_SIMGPU_H

#include <stddef.h>

#include "am_gpu.h"

/* Appends the spec's GPUs to out[*n..max); their uuids are "GPU-sim-<k>"
 * with k counting every simulated GPU so far, their indices count the GPUs
 * of their node in out (a card of this machine's node follows the real
 * cards: the inventory renumbers those). 0, or -1 with errbuf. */
int am_simgpu_parse(const char *spec, struct am_gpu_info *out, int *n, int max, char *errbuf, size_t errsize);

#endif
