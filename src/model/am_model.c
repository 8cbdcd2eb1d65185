/* am_model: the registry's reads. */
#include "am_model.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "../api/am_api.h"
#include "../store/am_store.h"

int am_model_name_ok(const char *n)
{
	size_t l = strlen(n);
	if (l < 1 || l > 128 || !isalnum((unsigned char)n[0]))
		return 0;
	for (size_t i = 0; i < l; i++)
		if (!isalnum((unsigned char)n[i]) && n[i] != '.' && n[i] != '_' && n[i] != '-')
			return 0;
	return 1;
}

int am_model_lookup(struct am_store *st, const char *ref, long long *id)
{
	char *end;
	long long n = strtoll(ref, &end, 10);
	long long found = 0;
	if (*ref && !*end && n > 0)
		am_store_int(st, &found, 0, "SELECT id FROM models WHERE id = ?", "i", n);
	else
		am_store_int(st, &found, 0, "SELECT id FROM models WHERE name = ?", "s", ref);
	if (!found)
		return -1;
	*id = found;
	return 0;
}

json_t *am_model_json(struct am_store *st, long long id)
{
	json_t *m = NULL;
	if (am_store_row(st, &m,
			 "SELECT m.id, m.name, m.display_name, m.description, m.tags, m.source, m.path, m.hub_id, m.state,"
			 " m.kind, m.architecture, m.parameters, m.weight_bytes, m.max_context, m.facts,"
			 " m.base_model_id, b.name AS base_model, m.visibility, m.created_by, m.created_at, m.updated_at,"
			 " (SELECT COUNT(*) FROM deployments d WHERE d.model_id = m.id) AS deployments"
			 " FROM models m LEFT JOIN models b ON b.id = m.base_model_id WHERE m.id = ?", "i", id) != 0 || !m)
		return NULL;
	static const char *const json_cols[] = { "tags", "facts" };
	for (size_t i = 0; i < 2; i++) {
		json_t *v = json_loads(json_string_value(json_object_get(m, json_cols[i])), 0, NULL);
		json_object_set_new(m, json_cols[i], v ? v : json_null());
	}
	return m;
}
