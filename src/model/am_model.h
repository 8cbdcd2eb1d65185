/* am_model: the model registry: models as the API shows them, and lookups
 * by id or name. */
#ifndef AM_MODEL_H
#define AM_MODEL_H

#include <jansson.h>

struct am_store;

/* A model reference is its numeric id or its name. 0 with *id, or -1. */
int am_model_lookup(struct am_store *st, const char *ref, long long *id);
/* The model as JSON (facts expanded, deployment count), or NULL. */
json_t *am_model_json(struct am_store *st, long long id);
/* Name rules: 1-128 of [A-Za-z0-9._-], starting with a letter or digit. */
int am_model_name_ok(const char *name);

#endif
