/* am_ops: backup, restore and check of a data dir (am_ops.h). The SQLite
 * work is am_backup's; this file finds the data dir as `serve` would (flag
 * > env > configuration file), takes the server's lock where it must, and
 * speaks to the administrator. */
#include "am_ops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "am_opts.h"
#include "base/am_buf.h"
#include "base/am_json.h"
#include "base/am_mem.h"
#include "base/am_path.h"
#include "store/am_backup.h"
#include "store/am_store.h"

static const char usage_backup[] =
	"usage: aimaas backup FILE [--data-dir DIR] [--config FILE] [--force]\n"
	"  a consistent copy of the database, taken while aimaas runs; refuses an\n"
	"  existing FILE unless --force. Model files, datasets' files, job folders,\n"
	"  logs and the key files are not in it (docs/operations.md).\n";
static const char usage_restore[] =
	"usage: aimaas restore FILE [--data-dir DIR] [--config FILE]\n"
	"  puts a backup in place of the database (stop aimaas first); the current\n"
	"  database is kept as aimaas.db.before-restore-<time>.\n";
static const char usage_check[] =
	"usage: aimaas check [--data-dir DIR] [--config FILE]\n"
	"  checks the database, the data dir's permissions and its files; reports\n"
	"  only. Exit status 0 healthy, 1 findings, 2 could not check.\n";

struct args {
	const char *file; /* the positional FILE, or NULL */
	int force;
	char dir[PATH_MAX]; /* the data dir, absolute when it exists */
};

/* Parses argv (argv[0] the command) into a; the data dir as `serve` finds it
 * (--data-dir > AIMAAS_DATA_DIR > the configuration file > ./data).
 * Returns 0, 1 after --help, 2 after printing why. */
static int parse(int argc, char **argv, const char *usage, int want_file, int allow_force, struct args *a)
{
	static const struct option opts[] = {
		{ "data-dir", required_argument, 0, 'd' }, { "config", required_argument, 0, 'c' },
		{ "force", no_argument, 0, 'f' },          { "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *dir = NULL, *config = NULL;
	int c;
	memset(a, 0, sizeof *a);
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'c': config = optarg; break;
		case 'f':
			if (!allow_force)
				goto bad;
			a->force = 1;
			break;
		case 'h': fputs(usage, stdout); return 1;
		default: goto bad;
		}
	}
	if (want_file) {
		if (optind >= argc)
			goto bad;
		a->file = argv[optind++];
	}
	if (optind != argc)
		goto bad;
	char *sargv[6] = { "serve", NULL };
	int n = 1;
	if (dir)
		sargv[n++] = "--data-dir", sargv[n++] = (char *)dir;
	if (config)
		sargv[n++] = "--config", sargv[n++] = (char *)config;
	struct am_opts *o = NULL;
	if (am_opts_load(n, sargv, usage, &o) != 0)
		return 2;
	const char *d = am_opts_str(o, AM_OPT_DATA_DIR);
	if (!realpath(d, a->dir))
		am_strlcpy(a->dir, d, sizeof a->dir);
	am_opts_free(o);
	return 0;
bad:
	fputs(usage, stderr);
	return 2;
}

/* Takes the lock `serve` holds on dir (aimaas.lock, flock) without
 * waiting. Returns the fd (close it to let go), -2 when a server holds it
 * (its pid in pid), -1 when the lock file cannot be opened. */
static int lock_dir(const char *dir, char *pid, size_t pidsz)
{
	char path[PATH_MAX + 16];
	am_fmt(path, sizeof path, "%s/aimaas.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return fd;
	ssize_t r = pread(fd, pid, pidsz - 1, 0);
	pid[r > 0 ? r : 0] = '\0';
	pid[strcspn(pid, "\n")] = '\0';
	close(fd);
	return -2;
}

static void print_table(const char *table, long long rows, void *data)
{
	(void)data;
	printf("  %-24s %lld rows\n", table, rows);
}

static int exists(const char *dir, const char *name)
{
	char p[PATH_MAX + 64];
	struct stat sb;
	am_fmt(p, sizeof p, "%s/%s", dir, name);
	return stat(p, &sb) == 0;
}

int am_ops_backup(int argc, char **argv)
{
	struct args a;
	int rc = parse(argc, argv, usage_backup, 1, 1, &a);
	if (rc)
		return rc == 1 ? 0 : 2;
	char db[PATH_MAX + 16], err[PATH_MAX + 256];
	am_fmt(db, sizeof db, "%s/aimaas.db", a.dir);
	struct am_backup_info info;
	if (am_backup_copy(db, a.file, a.force, &info, err, sizeof err) != 0) {
		fprintf(stderr, "aimaas backup: %s\n", err);
		return 1;
	}
	printf("wrote %s: %lld bytes, schema version %d, in %.1f ms (%d steps), from %s\n", a.file, info.bytes,
	       info.version, info.ms, info.steps, db);
	if (am_backup_tables(a.file, print_table, NULL, err, sizeof err) != 0)
		fprintf(stderr, "aimaas backup: %s\n", err);
	printf("not in it: model files, datasets/, finetune/ (job folders, adapters), logs/, usage-journal/\n");
	if (exists(a.dir, "cluster.key"))
		printf("keep a copy of %s/cluster.key apart from this backup: the Kubernetes clusters' credentials "
		       "in it open only with that key\n",
		       a.dir);
	if (exists(a.dir, "engine.key"))
		printf("keep a copy of %s/engine.key apart from this backup: without it, running engines' keys "
		       "change at the next restart of their deployments\n",
		       a.dir);
	return 0;
}

/* Whether a folder holds anything. */
static int non_empty(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return 0;
	struct dirent *e;
	int any = 0;
	while (!any && (e = readdir(d)))
		any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return any;
}

/* Moves path+suffix to aside+suffix when it exists. 0 or -1. */
static int move_side(const char *path, const char *aside, const char *suffix)
{
	char from[PATH_MAX + 16], to[PATH_MAX + 64];
	am_fmt(from, sizeof from, "%s%s", path, suffix);
	am_fmt(to, sizeof to, "%s%s", aside, suffix);
	if (rename(from, to) != 0 && errno != ENOENT)
		return -1;
	return 0;
}

int am_ops_restore(int argc, char **argv)
{
	struct args a;
	int rc = parse(argc, argv, usage_restore, 1, 0, &a);
	if (rc)
		return rc == 1 ? 0 : 2;
	char db[PATH_MAX + 16], tmp[PATH_MAX + 32], aside[PATH_MAX + 64], err[PATH_MAX + 256], pid[32] = "";
	struct am_backup_info info;
	int lock = -1, version = 0;
	rc = 1;
	if (am_mkdirs(a.dir) != 0) {
		fprintf(stderr, "aimaas restore: cannot create the data dir %s: %s\n", a.dir, strerror(errno));
		return 1;
	}
	/* held to the end: a server starting meanwhile waits, then refuses */
	lock = lock_dir(a.dir, pid, sizeof pid);
	if (lock == -2) {
		fprintf(stderr, "aimaas restore: aimaas (pid %s) is running on the data dir %s; stop it first\n",
			pid[0] ? pid : "?", a.dir);
		return 1;
	}
	if (lock < 0) {
		fprintf(stderr, "aimaas restore: cannot lock the data dir %s: %s\n", a.dir, strerror(errno));
		return 1;
	}
	am_fmt(db, sizeof db, "%s/aimaas.db", a.dir);
	am_fmt(tmp, sizeof tmp, "%s/aimaas.db.restoring", a.dir);
	/* a copy on the data dir's file system (the final rename is atomic),
	 * read through SQLite: what is not a database fails here */
	if (am_backup_copy(a.file, tmp, 1, &info, err, sizeof err) != 0) {
		fprintf(stderr, "aimaas restore: %s is not a database this can restore: %s\n", a.file, err);
		goto out;
	}
	int bad = am_backup_check(tmp, NULL, NULL, &version, err, sizeof err);
	if (bad != 0 || version <= 0 || version > am_backup_schema_max()) {
		if (bad < 0)
			fprintf(stderr, "aimaas restore: %s: %s\n", a.file, err);
		else if (bad > 0)
			fprintf(stderr, "aimaas restore: %s fails its integrity check; run 'aimaas check' on a copy\n",
				a.file);
		else if (version <= 0)
			fprintf(stderr, "aimaas restore: %s is not an aimaas database (no schema version)\n", a.file);
		else
			fprintf(stderr,
				"aimaas restore: %s has schema version %d, newer than this aimaas knows (%d); "
				"restore it with the aimaas that wrote it\n",
				a.file, version, am_backup_schema_max());
		unlink(tmp);
		goto out;
	}
	struct stat sb;
	if (lstat(db, &sb) == 0) {
		char ts[32];
		time_t now = time(NULL);
		struct tm tm;
		strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", gmtime_r(&now, &tm));
		am_fmt(aside, sizeof aside, "%s/aimaas.db.before-restore-%s", a.dir, ts);
		/* the old WAL goes with its database: left beside the new one,
		 * SQLite would replay it into the restored file */
		if (link(db, aside) != 0 || move_side(db, aside, "-wal") != 0 || move_side(db, aside, "-shm") != 0) {
			fprintf(stderr, "aimaas restore: cannot set %s aside as %s: %s\n", db, aside, strerror(errno));
			unlink(tmp);
			goto out;
		}
		printf("kept the database it replaces as %s\n", aside);
	}
	chmod(tmp, 0600);
	if (rename(tmp, db) != 0) {
		fprintf(stderr, "aimaas restore: cannot put %s in place: %s\n", db, strerror(errno));
		unlink(tmp);
		goto out;
	}
	int dfd = open(a.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	printf("restored %s from %s: %lld bytes, schema version %d (this aimaas: %d; newer migrations run at the "
	       "next start)\n",
	       db, a.file, info.bytes, version, am_backup_schema_max());
	char journal[PATH_MAX + 16];
	am_fmt(journal, sizeof journal, "%s/usage-journal", a.dir);
	if (non_empty(journal))
		printf("note: %s holds usage recorded after the old database's last write; the next start adds it "
		       "to the restored database (move it away first to leave it out)\n",
		       journal);
	rc = 0;
out:
	close(lock);
	return rc;
}

/* ---- check ---- */

struct report {
	int findings, notes;
	char **list; /* the findings, printed at the end */
};

static void finding(struct report *r, const char *text)
{
	r->list = am_realloc(r->list, (size_t)(r->findings + 1) * sizeof *r->list);
	r->list[r->findings++] = am_strdup(text);
}

static void on_db_finding(const char *text, void *data)
{
	finding(data, text);
}

/* A file or folder of the data dir: owner (uid: the user aimaas runs as)
 * and mode. max_mode: the bits it may have at most (0750 for the dir, 0600
 * for secrets). */
static void check_mode(struct report *r, const char *dir, const char *name, uid_t uid, mode_t max_mode)
{
	char p[PATH_MAX + 64], line[PATH_MAX + 200];
	struct stat sb;
	am_fmt(p, sizeof p, "%s%s%s", dir, name[0] ? "/" : "", name);
	if (lstat(p, &sb) != 0)
		return;
	if (sb.st_uid != uid) {
		am_fmt(line, sizeof line, "%s is owned by uid %u, not by the data dir's user (uid %u)", p,
		       (unsigned)sb.st_uid, (unsigned)uid);
		finding(r, line);
	}
	if (sb.st_mode & 07777 & ~max_mode) {
		am_fmt(line, sizeof line, "%s has mode %04o; it should allow at most %04o (chmod %04o %s)", p,
		       (unsigned)(sb.st_mode & 07777), (unsigned)max_mode, (unsigned)(sb.st_mode & max_mode), p);
		finding(r, line);
	}
}

/* sub/<id> folders of the data dir whose id no row has. as_note: logs of
 * deleted deployments, which the log pruning removes first: not a fault. */
static void orphans(struct report *r, const char *dir, const char *sub, json_t *rows, const char *what,
		    int as_note)
{
	char p[PATH_MAX + 64], line[PATH_MAX + 300];
	am_fmt(p, sizeof p, "%s/%s", dir, sub);
	DIR *d = opendir(p);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char *end;
		long long id = strtoll(e->d_name, &end, 10);
		char q[PATH_MAX + 400];
		am_fmt(q, sizeof q, "%s/%s", p, e->d_name);
		if (*end == '\0' && end != e->d_name && am_json_rows_have_id(rows, id))
			continue;
		if (*end == '\0' && end != e->d_name && !non_empty(q))
			continue; /* an empty folder a deletion left */
		am_fmt(line, sizeof line, "%s: no %s has the id %s (an orphan; remove it if nothing needs it)", q, what,
		       e->d_name);
		if (as_note) {
			printf("  note: %s\n", line);
			r->notes++;
		} else {
			finding(r, line);
		}
	}
	closedir(d);
}

/* Rows whose file (column col) is gone. */
static void missing_files(struct report *r, json_t *rows, const char *col, const char *what)
{
	size_t i;
	json_t *row;
	char line[PATH_MAX + 200];
	json_array_foreach(rows, i, row) {
		const char *p = json_string_value(json_object_get(row, col));
		struct stat sb;
		if (!p || !*p || stat(p, &sb) == 0)
			continue;
		am_fmt(line, sizeof line, "%s %lld (%s) points at %s, which is missing", what,
		       json_integer_value(json_object_get(row, "id")), json_string_value(json_object_get(row, "name")) ?: "",
		       p);
		finding(r, line);
	}
}

int am_ops_check(int argc, char **argv)
{
	struct args a;
	int rc = parse(argc, argv, usage_check, 0, 0, &a);
	if (rc)
		return rc == 1 ? 0 : 2;
	struct report r = { 0, 0, NULL };
	char db[PATH_MAX + 16], err[PATH_MAX + 256];
	struct stat sb;
	if (stat(a.dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "aimaas check: %s is not a data dir: %s\n", a.dir, strerror(errno ? errno : ENOTDIR));
		return 2;
	}
	am_fmt(db, sizeof db, "%s/aimaas.db", a.dir);
	printf("checking %s\n", a.dir);
	int version = 0, max = am_backup_schema_max();
	int bad = am_backup_check(db, on_db_finding, &r, &version, err, sizeof err);
	if (bad < 0) {
		fprintf(stderr, "aimaas check: %s\n", err);
		return 2;
	}
	printf("  database: integrity_check and foreign_key_check: %s; schema version %d (this aimaas: %d)\n",
	       bad ? "problems (below)" : "ok", version, max);
	if (version > max) {
		am_fmt(err, sizeof err, "schema version %d is newer than this aimaas knows (%d): use the newer binary",
		       version, max);
		finding(&r, err);
	} else if (version < max) {
		printf("  note: %d migrations pending; the next start applies them\n", max - version);
		r.notes++;
	}
	int before = r.findings;
	/* root checks on behalf of the data dir's owner; anyone else must be it */
	uid_t uid = geteuid() == 0 ? sb.st_uid : geteuid();
	check_mode(&r, a.dir, "", uid, 0750);
	static const char *const secret[] = { "aimaas.db", "aimaas.db-wal", "aimaas.db-shm", "engine.key",
					      "cluster.key" };
	for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++)
		check_mode(&r, a.dir, secret[i], uid, 0600);
	printf("  permissions: %s\n", r.findings == before ? "ok" : "problems (below)");
	struct am_store *s = NULL;
	if (version == max && am_store_open_readonly(db, &s, err, sizeof err) == 0) {
		json_t *ds = NULL, *jobs = NULL, *deps = NULL, *models = NULL;
		am_store_rows(s, &ds, "SELECT id, name, path FROM datasets", NULL);
		am_store_rows(s, &jobs, "SELECT id, name, job_dir FROM ft_jobs", NULL);
		am_store_rows(s, &deps, "SELECT id, name FROM deployments", NULL);
		am_store_rows(s, &models, "SELECT id, name, path FROM models WHERE state = 'ready' AND path IS NOT NULL",
			      NULL);
		before = r.findings;
		orphans(&r, a.dir, "datasets", ds, "dataset", 0);
		orphans(&r, a.dir, "finetune", jobs, "fine-tuning job", 0);
		orphans(&r, a.dir, "logs/deployments", deps, "deployment", 1);
		missing_files(&r, ds, "path", "dataset");
		missing_files(&r, jobs, "job_dir", "fine-tuning job");
		missing_files(&r, models, "path", "model");
		printf("  files: %zu datasets, %zu jobs, %zu deployments, %zu ready models checked: %s\n",
		       json_array_size(ds), json_array_size(jobs), json_array_size(deps), json_array_size(models),
		       r.findings == before ? "ok" : "problems (below)");
		json_decref(ds);
		json_decref(jobs);
		json_decref(deps);
		json_decref(models);
		am_store_close(s);
	} else {
		printf("  files: not checked (%s)\n", s || version != max ? "the schema is not this aimaas's" : err);
	}
	if (!r.findings) {
		printf("healthy\n");
		return 0;
	}
	printf("%d findings:\n", r.findings);
	for (int i = 0; i < r.findings; i++) {
		printf("  - %s\n", r.list[i]);
		free(r.list[i]);
	}
	free(r.list);
	return 1;
}
