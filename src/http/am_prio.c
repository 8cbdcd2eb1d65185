/* am_prio: the main loop's priorities (see am_prio.h). */
#include "am_prio.h"

struct event_base *am_prio_base(void)
{
	struct event_config *cfg = event_config_new();
	if (!cfg)
		return NULL;
	struct timeval slice = { 0, AM_PRIO_SLICE_MS * 1000 };
	event_config_set_max_dispatch_interval(cfg, &slice, -1, AM_PRIO_BACKGROUND);
	struct event_base *base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (base && event_base_priority_init(base, AM_PRIO_LEVELS) != 0) {
		event_base_free(base);
		return NULL;
	}
	return base;
}

void am_prio_background(struct event *ev)
{
	if (ev && event_base_get_npriorities(event_get_base(ev)) > AM_PRIO_BACKGROUND)
		event_priority_set(ev, AM_PRIO_BACKGROUND);
}

void am_prio_background_bev(struct bufferevent *bev)
{
	if (bev && event_base_get_npriorities(bufferevent_get_base(bev)) > AM_PRIO_BACKGROUND)
		bufferevent_priority_set(bev, AM_PRIO_BACKGROUND);
}
