/* am_fsm: see am_fsm.h. */
#include "am_fsm.h"

#include <string.h>

const char *am_fsm_name(const struct am_fsm *m, int s)
{
	return s >= 0 && s < m->n ? m->names[s] : "?";
}

int am_fsm_parse(const struct am_fsm *m, const char *name)
{
	for (int i = 0; name && i < m->n; i++)
		if (!strcmp(name, m->names[i]))
			return i;
	return -1;
}

int am_fsm_ok(const struct am_fsm *m, int from, int to)
{
	if (from < 0 || from >= m->n || to < 0 || to >= m->n)
		return 0;
	return from == to || (m->allowed[from] & AM_FSM_BIT(to)) != 0;
}
