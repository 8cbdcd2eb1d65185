/* deploy_internal: what the deploy module's files share (am_deploy.c, the
 * reconciler; am_deploy_verbs.c, the API's verbs) and nobody else uses. */
#ifndef DEPLOY_INTERNAL_H
#define DEPLOY_INTERNAL_H

struct am_deploy;
struct am_server;

/* The server a deploy module serves (borrowed). */
struct am_server *am__deploy_server(struct am_deploy *d);

#endif
