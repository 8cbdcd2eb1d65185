/* libFuzzer target for the hubs' file listings (Hugging Face's tree pages,
 * ModelScope's Data.Files) and the choice of files: any input is parsed or
 * refused with a message, never a crash; every path kept is safe to write
 * under a folder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/hub_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512] = "";
	for (int ms = 0; ms < 2; ms++) {
		struct hub_files f = { 0 };
		int rc = ms ? hub_files_parse_ms((const char *)data, size, &f, err, sizeof err)
			    : hub_files_parse_hf((const char *)data, size, &f, err, sizeof err);
		if (rc != 0 && !err[0])
			abort();
		if (rc == 0 && hub_files_select(&f, NULL, size % 2 ? "Q4_K_M" : NULL, err, sizeof err) >= 0)
			for (size_t i = 0; i < f.n; i++)
				if (!hub_path_ok(f.v[i].path))
					abort();
		hub_files_free(&f);
	}
	return 0;
}
