/* am_migrations: schema history. Times are wall-clock milliseconds. */
#include "am_migrations.h"

static const char *const migrations[] = {
	/* 1: foundation: inventory, users and sessions, tasks */
	"CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE clusters ("
	"  id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL);"
	"CREATE TABLE nodes ("
	"  id TEXT PRIMARY KEY, cluster_id TEXT NOT NULL REFERENCES clusters(id),"
	"  hostname TEXT NOT NULL, state TEXT NOT NULL, cpus INTEGER, memory_bytes INTEGER,"
	"  os TEXT, gpu_source TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
	"  last_seen_at INTEGER);"
	"CREATE TABLE gpus ("
	"  id TEXT PRIMARY KEY, node_id TEXT NOT NULL REFERENCES nodes(id), idx INTEGER NOT NULL,"
	"  name TEXT NOT NULL, memory_total INTEGER NOT NULL, compute_capability TEXT,"
	"  pci_bus_id TEXT, simulated INTEGER NOT NULL DEFAULT 0, present INTEGER NOT NULL DEFAULT 1,"
	"  first_seen_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL);"
	"CREATE INDEX gpus_node ON gpus(node_id, idx);"
	"CREATE TABLE gpu_reservations ("
	"  id INTEGER PRIMARY KEY, gpu_id TEXT NOT NULL REFERENCES gpus(id),"
	"  owner_kind TEXT NOT NULL, owner_id INTEGER NOT NULL, bytes INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL);"
	"CREATE INDEX gpu_reservations_gpu ON gpu_reservations(gpu_id);"
	"CREATE TABLE users ("
	"  id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	"  display_name TEXT NOT NULL DEFAULT '', password_hash TEXT NOT NULL,"
	"  role TEXT NOT NULL CHECK (role IN ('admin','user')),"
	"  disabled INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL, last_login_at INTEGER);"
	"CREATE TABLE sessions ("
	"  id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  kind TEXT NOT NULL CHECK (kind IN ('session','token')), name TEXT,"
	"  token_hash TEXT NOT NULL UNIQUE, token_hint TEXT NOT NULL, csrf TEXT,"
	"  created_at INTEGER NOT NULL, expires_at INTEGER, last_used_at INTEGER,"
	"  revoked_at INTEGER);"
	"CREATE INDEX sessions_user ON sessions(user_id, kind);"
	"CREATE TABLE tasks ("
	"  id INTEGER PRIMARY KEY, kind TEXT NOT NULL, target TEXT NOT NULL DEFAULT '',"
	"  actor TEXT NOT NULL, state TEXT NOT NULL"
	"    CHECK (state IN ('queued','running','succeeded','failed','cancelled')),"
	"  progress INTEGER NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '',"
	"  created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER);"
	"CREATE INDEX tasks_kind ON tasks(kind, id);"
	"CREATE INDEX tasks_state ON tasks(state, id);"
	"CREATE INDEX tasks_target ON tasks(target, id);",
};

const char *const *am_migrations_list(size_t *count)
{
	*count = sizeof migrations / sizeof migrations[0];
	return migrations;
}
