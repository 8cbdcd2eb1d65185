/* am_ops: the administrator's commands on a data dir, run beside (or
 * instead of) `aimaas serve`: backup, restore and check. Each takes argv
 * with argv[0] its own name and returns the process's exit status. */
#ifndef AM_OPS_H
#define AM_OPS_H

/* `aimaas backup FILE [--data-dir DIR] [--force]`: a consistent copy of the
 * database while a server may run (am_backup_copy); prints what it wrote
 * and what a backup leaves out. 0 written, 1 failed, 2 bad usage. */
int am_ops_backup(int argc, char **argv);

/* `aimaas restore FILE [--data-dir DIR]`: refuses while a server holds the
 * data dir's lock; checks FILE (integrity, a schema version this binary
 * knows), sets the current database aside as aimaas.db.before-restore-<time>
 * and renames the checked copy into place. 0 restored, 1 refused or
 * failed, 2 bad usage. */
int am_ops_restore(int argc, char **argv);

/* `aimaas check [--data-dir DIR]`: the database's integrity, foreign keys
 * and schema version, the data dir's and its secret files' permissions,
 * files no row refers to and rows whose files are gone. Reports only. 0
 * healthy, 1 with findings (listed), 2 bad usage or unreadable. */
int am_ops_check(int argc, char **argv);

#endif
