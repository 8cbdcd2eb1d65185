/* am_file: the last lines of a text file (a log), bounded: what a console
 * shows of a process's output, whichever runtime wrote it. */
#ifndef AM_FILE_H
#define AM_FILE_H

#include <stddef.h>

/* The last n lines (at most 64 KiB) of a file, oldest first; free with
 * am_file_lines_free. Returns how many (0 when the file cannot be read). */
int am_file_tail(const char *path, int n, char ***lines);
/* Whether a line (len bytes, not NUL-terminated) is one to keep. */
typedef int (*am_file_keep_fn)(const char *line, size_t len);
/* The last n lines of a file that keep answers 1 for, oldest first: read
 * back from the end in windows that double from 64 KiB up to max_scan
 * bytes, so a view of a log full of lines it skips still fills. As
 * am_file_tail otherwise (which is this with keep NULL and 64 KiB). */
int am_file_tail_if(const char *path, int n, am_file_keep_fn keep, size_t max_scan, char ***lines);
void am_file_lines_free(char **lines, int n);

#endif
