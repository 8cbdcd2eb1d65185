/* am_prio: the main loop's priorities. `aimaas serve` makes its event base
 * with three (am_prio_base): what has no priority set runs at 1, the
 * default (requests to the API: the listener and its connections);
 * background work (health checks, scrapes, the reconciler's passes, the
 * kept-alive HTTP client connections marked am_client_conn_background)
 * runs at 2; a request made for a user (the playground's) keeps 1. libevent runs a lower
 * priority's callbacks only when no higher one is active, and at most
 * AM_PRIO_SLICE_MS of them before it polls again, so a thousand checks come
 * due at once delay an API answer by a slice, not by all of them. On a base
 * with fewer priorities (a gateway worker's, a test's) these do nothing. */
#ifndef AM_PRIO_H
#define AM_PRIO_H

#include <event2/bufferevent.h>
#include <event2/event.h>

#define AM_PRIO_LEVELS 3
#define AM_PRIO_BACKGROUND 2
#define AM_PRIO_SLICE_MS 5

/* A new event base with the priorities above, or NULL. */
struct event_base *am_prio_base(void);
/* Marks an event (not active yet) or a bufferevent as background work. */
void am_prio_background(struct event *ev);
void am_prio_background_bev(struct bufferevent *bev);

#endif
