/* am_ui: the web console's files, served at / by the API's port: the built
 * single-page app from a folder (--ui-dir; by default share/aimaas/ui beside
 * the binary, or build/ui when run from the source tree). Hashed assets
 * (/assets/...) are cached for a year; index.html is revalidated (ETag), and
 * any app route without a file extension falls back to it. Paths are
 * confined to the folder with realpath. */
#ifndef AM_UI_H
#define AM_UI_H

#include <stddef.h>

struct am_http_req;

/* The console folder to use: given (may be NULL: the defaults; "": none)
 * or the defaults; out is "" when there is none. 0, or -1 when a given folder does not exist. */
int am_ui_locate(const char *given, char *out, size_t size);
/* Answers a GET/HEAD for the console when path is not the API's or the
 * gateway's. 1 when answered, 0 when the request is not the console's. */
int am_ui_serve(const char *ui_dir, struct am_http_req *req);

#endif
