/* am_file: the last lines of a text file (a log), bounded: what a console
 * shows of a process's output, whichever runtime wrote it. */
#ifndef AM_FILE_H
#define AM_FILE_H

/* The last n lines (at most 64 KiB) of a file, oldest first; free with
 * am_file_lines_free. Returns how many (0 when the file cannot be read). */
int am_file_tail(const char *path, int n, char ***lines);
void am_file_lines_free(char **lines, int n);

#endif
