/* am_file: reading the end of a text file (see am_file.h). */
#include "am_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "am_mem.h"

/* Up to n of the lines of buf[0..got) that keep takes, newest first, into
 * out; partial: the window starts mid-file, so its first line (taken
 * last) may be cut. Returns how many. */
static int newest_lines(char *buf, size_t got, int partial, int n, am_file_keep_fn keep, char **out)
{
	int k = 0;
	char *end = buf + got;
	while (end > buf && end[-1] == '\n')
		*--end = '\0';
	while (k < n && end > buf) {
		char *nl = end;
		while (nl > buf && nl[-1] != '\n')
			nl--;
		if (!keep || keep(nl, (size_t)(end - nl)))
			out[k++] = am_strndup(nl, (size_t)(end - nl));
		end = nl > buf ? nl - 1 : buf;
		if (partial && nl == buf)
			break; /* a partial first line */
	}
	return k;
}

int am_file_tail_if(const char *path, int n, am_file_keep_fn keep, size_t max_scan, char ***lines)
{
	*lines = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct stat sb;
	if (fstat(fd, &sb) != 0)
		sb.st_size = 0;
	char **out = am_calloc((size_t)(n > 0 ? n : 0) + 1, sizeof *out);
	int k = 0;
	for (off_t want = 65536;; want *= 2) {
		if (max_scan > 65536 && (size_t)want > max_scan)
			want = (off_t)max_scan;
		off_t from = sb.st_size > want ? sb.st_size - want : 0;
		char *buf = am_malloc((size_t)(sb.st_size - from) + 1);
		ssize_t got = pread(fd, buf, (size_t)(sb.st_size - from), from);
		if (got < 0)
			got = 0;
		buf[got] = '\0';
		k = newest_lines(buf, (size_t)got, from > 0, n, keep, out);
		free(buf);
		if (k >= n || from == 0 || !keep || (size_t)want >= max_scan)
			break;
		for (int i = 0; i < k; i++) /* too few kept: look further back */
			free(out[i]);
	}
	close(fd);
	for (int i = 0; i < k / 2; i++) { /* oldest first */
		char *t = out[i];
		out[i] = out[k - 1 - i];
		out[k - 1 - i] = t;
	}
	*lines = out;
	return k;
}

int am_file_tail(const char *path, int n, char ***lines)
{
	return am_file_tail_if(path, n, NULL, 65536, lines);
}

void am_file_lines_free(char **lines, int n)
{
	for (int i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}
