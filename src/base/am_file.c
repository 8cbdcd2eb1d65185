/* am_file: reading the end of a text file (see am_file.h). */
#include "am_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "am_mem.h"

int am_file_tail(const char *path, int n, char ***lines)
{
	*lines = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct stat sb;
	fstat(fd, &sb);
	off_t want = 65536;
	off_t from = sb.st_size > want ? sb.st_size - want : 0;
	char *buf = am_malloc((size_t)(sb.st_size - from) + 1);
	ssize_t got = pread(fd, buf, (size_t)(sb.st_size - from), from);
	close(fd);
	if (got < 0)
		got = 0;
	buf[got] = '\0';
	/* count back n newlines */
	char **out = am_calloc((size_t)n + 1, sizeof *out);
	int k = 0;
	char *end = buf + got;
	while (end > buf && end[-1] == '\n')
		*--end = '\0';
	while (k < n && end > buf) {
		char *nl = end;
		while (nl > buf && nl[-1] != '\n')
			nl--;
		out[k++] = am_strndup(nl, (size_t)(end - nl));
		end = nl > buf ? nl - 1 : buf;
		if (from > 0 && nl == buf)
			break; /* a partial first line */
	}
	free(buf);
	for (int i = 0; i < k / 2; i++) { /* oldest first */
		char *t = out[i];
		out[i] = out[k - 1 - i];
		out[k - 1 - i] = t;
	}
	*lines = out;
	return k;
}

void am_file_lines_free(char **lines, int n)
{
	for (int i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}
