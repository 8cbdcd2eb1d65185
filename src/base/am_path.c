/* am_path: path confinement. */
#include "am_path.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "am_buf.h"

int am_path_under(const char *real, const char *root)
{
	size_t n = strlen(root);
	while (n > 1 && root[n - 1] == '/')
		n--;
	return strncmp(real, root, n) == 0 && (real[n] == '\0' || real[n] == '/');
}

int am_path_confine(const char *path, char *const *roots, int nroots, const char *field, char *out, size_t size,
		    struct am_err *err)
{
	if (!path[0] || path[0] != '/')
		return am_err_set(err, AM_E_INVALID, field, "'%s' must be an absolute path", field);
	char real[PATH_MAX];
	if (!realpath(path, real))
		return am_err_set(err, AM_E_INVALID, field, "'%s' does not exist: %.200s (%s)", field, path,
				  strerror(errno));
	for (int i = 0; i < nroots; i++) {
		if (am_path_under(real, roots[i])) {
			if (am_strlcpy(out, real, size) >= size)
				return am_err_set(err, AM_E_INVALID, field, "'%s' is too long", field);
			return 0;
		}
	}
	return am_err_set(err, AM_E_INVALID, field, "'%s' resolves to %.200s, outside the allowed model roots (%s%s)",
			  field, real, nroots ? roots[0] : "none", nroots > 1 ? ", …" : "");
}

int am_mkdirs(const char *path)
{
	char tmp[PATH_MAX];
	if (am_strlcpy(tmp, path, sizeof tmp) >= sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

int am_path_which(const char *name, char *out, size_t size)
{
	if (!name || !*name)
		return -1;
	if (strchr(name, '/')) {
		am_strlcpy(out, name, size);
		return access(out, X_OK) == 0 ? 0 : -1;
	}
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		const char *colon = strchr(path, ':');
		size_t n = colon ? (size_t)(colon - path) : strlen(path);
		if (n) {
			am_fmt(out, size, "%.*s/%s", (int)n, path, name);
			struct stat sb;
			if (access(out, X_OK) == 0 && stat(out, &sb) == 0 && S_ISREG(sb.st_mode))
				return 0;
		}
		if (!colon)
			break;
		path = colon + 1;
	}
	return -1;
}
