/* The catalog built into the binary: catalog/models.json, byte for byte,
 * followed by a NUL (the Makefile makes this object depend on the file). */
#include <stddef.h>

#include "hub_catalog.h"

__asm__(".section .rodata\n"
	".global am_catalog_json\n"
	".type am_catalog_json, @object\n"
	".balign 16\n"
	"am_catalog_json:\n"
	".incbin \"catalog/models.json\"\n"
	".byte 0\n"
	".global am_catalog_json_end\n"
	"am_catalog_json_end:\n"
	".previous\n");

extern const char am_catalog_json[];
extern const char am_catalog_json_end[];

const char *hub_catalog_builtin(size_t *len)
{
	*len = (size_t)(am_catalog_json_end - am_catalog_json) - 1;
	return am_catalog_json;
}
