/* am_migrations: schema history. Times are wall-clock milliseconds. Ids are
 * AUTOINCREMENT: a deleted record's id is never handed out again, so a log
 * folder, a task's target or an audit line always means one record. */
#include "am_migrations.h"

/* The usage_rollup trigger's statement for one roll-up table (its time
 * column, and the span it rounds NEW.at down to, in ms): the raw row NEW
 * added to its group. (Migrations before 25 spell it out; they are
 * history, kept as they ran.) */
#define ROLLUP_ROW(table, col, span)                                                                                  \
	"  INSERT INTO " table " VALUES((NEW.at / " span ") * " span ", COALESCE(NEW.user_id, 0),"                       \
	"    COALESCE(NEW.key_id, 0), NEW.model, COALESCE(NEW.deployment_id, 0), 1, NEW.prompt_tokens,"                 \
	"    NEW.completion_tokens, NEW.status >= 400, CASE WHEN NEW.ttft_ms >= 0 THEN NEW.ttft_ms ELSE 0 END,"        \
	"    COALESCE(NEW.ttft_ms >= 0, 0), NEW.duration_ms)"                                                         \
	"  ON CONFLICT(" col ", user_id, key_id, model, deployment_id) DO UPDATE SET requests = requests + 1,"         \
	"    prompt_tokens = prompt_tokens + excluded.prompt_tokens,"                                                  \
	"    completion_tokens = completion_tokens + excluded.completion_tokens, errors = errors + excluded.errors,"  \
	"    ttft_sum = ttft_sum + excluded.ttft_sum, ttft_n = ttft_n + excluded.ttft_n,"                              \
	"    duration_sum = duration_sum + excluded.duration_sum;"

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
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, gpu_id TEXT NOT NULL REFERENCES gpus(id),"
	"  owner_kind TEXT NOT NULL, owner_id INTEGER NOT NULL, bytes INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL);"
	"CREATE INDEX gpu_reservations_gpu ON gpu_reservations(gpu_id);"
	"CREATE TABLE users ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	"  display_name TEXT NOT NULL DEFAULT '', password_hash TEXT NOT NULL,"
	"  role TEXT NOT NULL CHECK (role IN ('admin','user')),"
	"  disabled INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL, last_login_at INTEGER);"
	"CREATE TABLE sessions ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  kind TEXT NOT NULL CHECK (kind IN ('session','token')), name TEXT,"
	"  token_hash TEXT NOT NULL UNIQUE, token_hint TEXT NOT NULL, csrf TEXT,"
	"  created_at INTEGER NOT NULL, expires_at INTEGER, last_used_at INTEGER,"
	"  revoked_at INTEGER);"
	"CREATE INDEX sessions_user ON sessions(user_id, kind);"
	"CREATE TABLE tasks ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, target TEXT NOT NULL DEFAULT '',"
	"  actor TEXT NOT NULL, state TEXT NOT NULL"
	"    CHECK (state IN ('queued','running','succeeded','failed','cancelled')),"
	"  progress INTEGER NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '',"
	"  created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER);"
	"CREATE INDEX tasks_kind ON tasks(kind, id);"
	"CREATE INDEX tasks_state ON tasks(state, id);"
	"CREATE INDEX tasks_target ON tasks(target, id);",

	/* 2: models, deployments and their instances, engine settings */
	"CREATE TABLE models ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL DEFAULT '',"
	"  description TEXT NOT NULL DEFAULT '', tags TEXT NOT NULL DEFAULT '[]',"
	"  source TEXT NOT NULL CHECK (source IN ('local','huggingface','modelscope')),"
	"  path TEXT, hub_id TEXT, state TEXT NOT NULL, kind TEXT, architecture TEXT,"
	"  parameters INTEGER, weight_bytes INTEGER, max_context INTEGER, facts TEXT NOT NULL DEFAULT '{}',"
	"  base_model_id INTEGER REFERENCES models(id), created_by TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
	"CREATE TABLE deployments ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, model_id INTEGER NOT NULL REFERENCES models(id),"
	"  engine TEXT NOT NULL, replicas INTEGER NOT NULL, gpus_per_replica INTEGER NOT NULL,"
	"  pinned_gpus TEXT, placement TEXT NOT NULL DEFAULT 'binpack', max_model_len INTEGER,"
	"  max_num_seqs INTEGER, gpu_memory_utilization REAL, engine_args TEXT NOT NULL DEFAULT '[]',"
	"  env TEXT NOT NULL DEFAULT '{}', trust_remote_code INTEGER NOT NULL DEFAULT 0,"
	"  lora_modules TEXT NOT NULL DEFAULT '[]',"
	"  desired TEXT NOT NULL CHECK (desired IN ('running','stopped')), state TEXT NOT NULL,"
	"  reason TEXT NOT NULL DEFAULT '', task_id INTEGER, created_by TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
	"CREATE TABLE instances ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, deployment_id INTEGER NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,"
	"  replica INTEGER NOT NULL, node_id TEXT NOT NULL, gpus TEXT NOT NULL DEFAULT '[]',"
	"  gpu_indices TEXT NOT NULL DEFAULT '[]', mem_per_gpu INTEGER NOT NULL DEFAULT 0, mem_fraction REAL,"
	"  dtype TEXT, port INTEGER, api_key TEXT NOT NULL, pid INTEGER, pid_start INTEGER,"
	"  state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', restarts INTEGER NOT NULL DEFAULT 0,"
	"  failures INTEGER NOT NULL DEFAULT 0, exit_status TEXT, log_path TEXT, started_at INTEGER,"
	"  ready_at INTEGER, stopped_at INTEGER, backoff_until INTEGER, created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL, UNIQUE (deployment_id, replica));"
	"CREATE TRIGGER instances_release AFTER DELETE ON instances BEGIN"
	"  DELETE FROM gpu_reservations WHERE owner_kind = 'instance' AND owner_id = old.id; END;"
	"CREATE TABLE engine_settings ("
	"  name TEXT PRIMARY KEY, binary TEXT, argv TEXT, health_path TEXT, env TEXT NOT NULL DEFAULT '{}',"
	"  kinds TEXT NOT NULL DEFAULT '[]', custom INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL);",

	/* 3: the gateway: API keys and usage */
	"CREATE TABLE api_keys ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, key_hint TEXT NOT NULL, models TEXT,"
	"  rpm INTEGER, tpm INTEGER, quota_tokens INTEGER, used_tokens INTEGER NOT NULL DEFAULT 0,"
	"  expires_at INTEGER, revoked_at INTEGER, last_used_at INTEGER, created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL);"
	"CREATE INDEX api_keys_user ON api_keys(user_id);"
	"CREATE TABLE usage_records ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, key_id INTEGER, user_id INTEGER,"
	"  model TEXT NOT NULL, deployment_id INTEGER, instance_id INTEGER, endpoint TEXT NOT NULL,"
	"  prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,"
	"  ttft_ms REAL, duration_ms REAL NOT NULL, status INTEGER NOT NULL, stream INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX usage_at ON usage_records(at);"
	"CREATE INDEX usage_key ON usage_records(key_id, at);"
	"ALTER TABLE deployments ADD COLUMN aliases TEXT NOT NULL DEFAULT '[]';",

	/* 4: fine-tuning datasets */
	"CREATE TABLE datasets ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, format TEXT NOT NULL,"
	"  file_type TEXT NOT NULL, file_name TEXT NOT NULL, path TEXT NOT NULL, size_bytes INTEGER NOT NULL,"
	"  columns TEXT, records INTEGER NOT NULL, state TEXT NOT NULL CHECK (state IN ('valid','invalid')),"
	"  report TEXT NOT NULL, created_by TEXT NOT NULL, created_at INTEGER NOT NULL);",

	/* 5: fine-tuning jobs (GPU reservations with owner_kind 'job') */
	"CREATE TABLE ft_jobs ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,"
	"  base_model_id INTEGER NOT NULL REFERENCES models(id), datasets TEXT NOT NULL,"
	"  method TEXT NOT NULL CHECK (method IN ('lora','qlora','full','freeze')), stage TEXT NOT NULL,"
	"  template TEXT NOT NULL, quantization_bit INTEGER NOT NULL DEFAULT 0, params TEXT NOT NULL,"
	"  gpu_count INTEGER NOT NULL, pinned_gpus TEXT NOT NULL DEFAULT '[]', deepspeed INTEGER NOT NULL DEFAULT 0,"
	"  gpus TEXT, gpu_indices TEXT, mem_per_gpu INTEGER, precision TEXT,"
	"  state TEXT NOT NULL CHECK (state IN ('queued','starting','running','stopping','succeeded','failed','stopped')),"
	"  reason TEXT NOT NULL DEFAULT '', pid INTEGER, pid_start INTEGER, job_dir TEXT, progress TEXT,"
	"  stop_requested_at INTEGER, grace_ms INTEGER NOT NULL DEFAULT 60000, resume INTEGER NOT NULL DEFAULT 0,"
	"  output_name TEXT NOT NULL, result_model_id INTEGER, task_id INTEGER, created_by TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER, updated_at INTEGER NOT NULL);"
	"CREATE INDEX ft_jobs_state ON ft_jobs(state);",

	/* 6: merging a job's LoRA adapter into its base (llamafactory-cli export) */
	"ALTER TABLE ft_jobs ADD COLUMN export_state TEXT;"
	"ALTER TABLE ft_jobs ADD COLUMN export_reason TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE ft_jobs ADD COLUMN export_name TEXT;"
	"ALTER TABLE ft_jobs ADD COLUMN export_pid INTEGER;"
	"ALTER TABLE ft_jobs ADD COLUMN export_pid_start INTEGER;"
	"ALTER TABLE ft_jobs ADD COLUMN export_model_id INTEGER;",

	/* 7: ownership by user id, not by name: a deleted user's objects never
	 * pass to a new account of the same name (user ids are AUTOINCREMENT).
	 * created_by/actor stay, for display. Existing rows go to the account of
	 * that name that existed when the row was made; a row older than the
	 * account belonged to an earlier one and is left to no one (admins).
	 * Datasets are private until their owner shares them; models registered
	 * by admins are the shared catalog, a fine-tuning job's outputs are
	 * private to the job's owner. */
	"ALTER TABLE models ADD COLUMN owner_id INTEGER;"
	"ALTER TABLE models ADD COLUMN visibility TEXT NOT NULL DEFAULT 'shared'"
	"  CHECK (visibility IN ('private','shared'));"
	"ALTER TABLE deployments ADD COLUMN owner_id INTEGER;"
	"ALTER TABLE datasets ADD COLUMN owner_id INTEGER;"
	"ALTER TABLE datasets ADD COLUMN visibility TEXT NOT NULL DEFAULT 'private'"
	"  CHECK (visibility IN ('private','shared'));"
	"ALTER TABLE ft_jobs ADD COLUMN owner_id INTEGER;"
	"ALTER TABLE tasks ADD COLUMN actor_id INTEGER;"
	"UPDATE models SET owner_id = (SELECT u.id FROM users u WHERE u.username = models.created_by"
	"  AND u.created_at <= models.created_at);"
	"UPDATE deployments SET owner_id = (SELECT u.id FROM users u WHERE u.username = deployments.created_by"
	"  AND u.created_at <= deployments.created_at);"
	"UPDATE datasets SET owner_id = (SELECT u.id FROM users u WHERE u.username = datasets.created_by"
	"  AND u.created_at <= datasets.created_at);"
	"UPDATE ft_jobs SET owner_id = (SELECT u.id FROM users u WHERE u.username = ft_jobs.created_by"
	"  AND u.created_at <= ft_jobs.created_at);"
	"UPDATE tasks SET actor_id = (SELECT u.id FROM users u WHERE u.username = tasks.actor"
	"  AND u.created_at <= tasks.created_at);"
	"UPDATE models SET visibility = 'private' WHERE id IN (SELECT result_model_id FROM ft_jobs"
	"  UNION SELECT export_model_id FROM ft_jobs);"
	"CREATE INDEX deployments_owner ON deployments(owner_id);"
	"CREATE INDEX datasets_owner ON datasets(owner_id);"
	"CREATE INDEX ft_jobs_owner ON ft_jobs(owner_id);"
	"CREATE INDEX tasks_actor ON tasks(actor_id, id);",

	/* 8: what an admin lets users pass each engine beyond the defaults
	 * (JSON lists), and refused requests counted on one task row */
	"ALTER TABLE engine_settings ADD COLUMN env_allow TEXT;"
	"ALTER TABLE engine_settings ADD COLUMN args_allow TEXT;"
	"ALTER TABLE tasks ADD COLUMN refusals INTEGER NOT NULL DEFAULT 0;",

	/* 9: a spawn is recorded before it happens (the marker the child carries
	 * in AIMAAS_OWNER), so a restart adopts or ends what a killed aimaas
	 * started; an owner holds at most one reservation per GPU */
	"ALTER TABLE instances ADD COLUMN spawn_marker TEXT;"
	"ALTER TABLE ft_jobs ADD COLUMN spawn_marker TEXT;"
	"ALTER TABLE ft_jobs ADD COLUMN export_marker TEXT;"
	"DELETE FROM gpu_reservations WHERE id NOT IN"
	"  (SELECT MIN(id) FROM gpu_reservations GROUP BY gpu_id, owner_kind, owner_id);"
	"CREATE UNIQUE INDEX gpu_reservations_owner ON gpu_reservations(owner_kind, owner_id, gpu_id);",

	/* 10: usage records come through the gateway's journal: each has a unique
	 * id there, so folding a journal file twice inserts nothing twice */
	"ALTER TABLE usage_records ADD COLUMN jid TEXT;"
	"CREATE UNIQUE INDEX usage_jid ON usage_records(jid);",

	/* 11: workloads through a runtime (am_runtime): each instance and job
	 * names its runtime, its node, where it serves and the runtime's opaque
	 * reference (kept after it ends: its log). Rows of an older aimaas get
	 * the local runtime's reference, "<pid>:<start>:<log>" (pid 0 when no
	 * process was recorded), so running engines are adopted, not orphaned;
	 * pid, pid_start, port and log_path stay, unread */
	"ALTER TABLE instances ADD COLUMN runtime TEXT NOT NULL DEFAULT 'local';"
	"ALTER TABLE instances ADD COLUMN address TEXT;"
	"ALTER TABLE instances ADD COLUMN rt_ref TEXT;"
	"UPDATE instances SET address = '127.0.0.1:' || port WHERE port IS NOT NULL;"
	"UPDATE instances SET rt_ref = COALESCE(pid, 0) || ':' || COALESCE(pid_start, 0) || ':' || COALESCE(log_path, '')"
	"  WHERE pid IS NOT NULL OR log_path IS NOT NULL;"
	"ALTER TABLE ft_jobs ADD COLUMN runtime TEXT NOT NULL DEFAULT 'local';"
	"ALTER TABLE ft_jobs ADD COLUMN node_id TEXT NOT NULL DEFAULT 'local';"
	"ALTER TABLE ft_jobs ADD COLUMN rt_ref TEXT;"
	"ALTER TABLE ft_jobs ADD COLUMN export_ref TEXT;"
	"UPDATE ft_jobs SET rt_ref = COALESCE(pid, 0) || ':' || COALESCE(pid_start, 0) || ':' || job_dir || '/train.log'"
	"  WHERE job_dir IS NOT NULL AND (pid IS NOT NULL OR state NOT IN ('queued'));"
	"UPDATE ft_jobs SET export_ref = COALESCE(export_pid, 0) || ':' || COALESCE(export_pid_start, 0) || ':' || job_dir"
	"  || '/export.log' WHERE job_dir IS NOT NULL AND export_state IS NOT NULL;",

	/* 12: /usage for one user or one deployment reads its rows by index
	 * (usage_at and usage_key serve a time range and a key) */
	"CREATE INDEX IF NOT EXISTS usage_user ON usage_records(user_id, at);"
	"CREATE INDEX IF NOT EXISTS usage_deployment ON usage_records(deployment_id, at);",

	/* 13: Kubernetes clusters (kind 'kubernetes'; id = name): where the API
	 * server is, the namespace aimaas works in, whether it answers, and the
	 * credentials sealed (crypto_secretbox with the cluster key; NULL for
	 * in-cluster, read from the service account at each start). Storage
	 * fields are for the kubernetes runtime. Their nodes record taints, the
	 * allocatable nvidia.com/gpu count and how many of those other pods use. */
	"ALTER TABLE clusters ADD COLUMN namespace TEXT;"
	"ALTER TABLE clusters ADD COLUMN state TEXT NOT NULL DEFAULT 'reachable';"
	"ALTER TABLE clusters ADD COLUMN last_error TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE clusters ADD COLUMN server TEXT;"
	"ALTER TABLE clusters ADD COLUMN context TEXT;"
	"ALTER TABLE clusters ADD COLUMN in_cluster INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE clusters ADD COLUMN credentials TEXT;"
	"ALTER TABLE clusters ADD COLUMN storage_mode TEXT;"
	"ALTER TABLE clusters ADD COLUMN storage_path TEXT;"
	"ALTER TABLE clusters ADD COLUMN storage_claim TEXT;"
	"ALTER TABLE clusters ADD COLUMN updated_at INTEGER;"
	"CREATE UNIQUE INDEX clusters_name ON clusters(name);"
	"ALTER TABLE nodes ADD COLUMN taints TEXT;"
	"ALTER TABLE nodes ADD COLUMN gpus_allocatable INTEGER;"
	"ALTER TABLE nodes ADD COLUMN gpus_used_other INTEGER;"
	"CREATE INDEX nodes_cluster ON nodes(cluster_id);",

	/* 14: generations of what the capacity view reads, bumped by triggers
	 * (cards: present cards of ready nodes; res: reservations and their
	 * holders' names), so the view is kept in memory and re-read only when
	 * a writer, whichever, changed it */
	"CREATE TABLE capacity_gen (id INTEGER PRIMARY KEY CHECK (id = 1), cards INTEGER NOT NULL,"
	"  res INTEGER NOT NULL);"
	"INSERT INTO capacity_gen VALUES (1, 0, 0);"
	"CREATE TRIGGER capacity_gpus_i AFTER INSERT ON gpus BEGIN UPDATE capacity_gen SET cards = cards + 1; END;"
	"CREATE TRIGGER capacity_gpus_u AFTER UPDATE ON gpus BEGIN UPDATE capacity_gen SET cards = cards + 1; END;"
	"CREATE TRIGGER capacity_gpus_d AFTER DELETE ON gpus BEGIN UPDATE capacity_gen SET cards = cards + 1; END;"
	"CREATE TRIGGER capacity_nodes_i AFTER INSERT ON nodes BEGIN UPDATE capacity_gen SET cards = cards + 1; END;"
	"CREATE TRIGGER capacity_nodes_u AFTER UPDATE OF state, gpus_used_other ON nodes"
	"  BEGIN UPDATE capacity_gen SET cards = cards + 1; END;"
	"CREATE TRIGGER capacity_nodes_d AFTER DELETE ON nodes BEGIN UPDATE capacity_gen SET cards = cards + 1; END;"
	"CREATE TRIGGER capacity_res_i AFTER INSERT ON gpu_reservations BEGIN UPDATE capacity_gen SET res = res + 1; END;"
	"CREATE TRIGGER capacity_res_u AFTER UPDATE ON gpu_reservations BEGIN UPDATE capacity_gen SET res = res + 1; END;"
	"CREATE TRIGGER capacity_res_d AFTER DELETE ON gpu_reservations BEGIN UPDATE capacity_gen SET res = res + 1; END;"
	"CREATE TRIGGER capacity_dep_name AFTER UPDATE OF name ON deployments"
	"  BEGIN UPDATE capacity_gen SET res = res + 1; END;",

	/* 15: usage rolled up by hour (user, key, model, deployment; 0 for
	 * none), kept by a trigger whoever writes usage_records: GET /usage reads
	 * whole hours here and only the partial hours at its edges from the raw
	 * rows, so its cost does not grow with the table; raw rows can later be
	 * pruned without losing the totals */
	"CREATE TABLE usage_hourly ("
	"  hour_at INTEGER NOT NULL, user_id INTEGER NOT NULL, key_id INTEGER NOT NULL, model TEXT NOT NULL,"
	"  deployment_id INTEGER NOT NULL, requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL,"
	"  completion_tokens INTEGER NOT NULL, errors INTEGER NOT NULL, ttft_sum REAL NOT NULL, ttft_n INTEGER NOT NULL,"
	"  duration_sum REAL NOT NULL, PRIMARY KEY (hour_at, user_id, key_id, model, deployment_id)) WITHOUT ROWID;"
	"CREATE INDEX usage_hourly_user ON usage_hourly(user_id, hour_at);"
	"INSERT INTO usage_hourly SELECT (at / 3600000) * 3600000, COALESCE(user_id, 0), COALESCE(key_id, 0), model,"
	"  COALESCE(deployment_id, 0), COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(status >= 400),"
	"  TOTAL(CASE WHEN ttft_ms >= 0 THEN ttft_ms END), COUNT(CASE WHEN ttft_ms >= 0 THEN 1 END), TOTAL(duration_ms)"
	"  FROM usage_records GROUP BY 1, 2, 3, 4, 5;"
	"CREATE TRIGGER usage_rollup AFTER INSERT ON usage_records BEGIN"
	"  INSERT INTO usage_hourly VALUES((NEW.at / 3600000) * 3600000, COALESCE(NEW.user_id, 0), COALESCE(NEW.key_id, 0),"
	"    NEW.model, COALESCE(NEW.deployment_id, 0), 1, NEW.prompt_tokens, NEW.completion_tokens, NEW.status >= 400,"
	"    CASE WHEN NEW.ttft_ms >= 0 THEN NEW.ttft_ms ELSE 0 END, COALESCE(NEW.ttft_ms >= 0, 0), NEW.duration_ms)"
	"  ON CONFLICT(hour_at, user_id, key_id, model, deployment_id) DO UPDATE SET requests = requests + 1, prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
	"    completion_tokens = completion_tokens + excluded.completion_tokens, errors = errors + excluded.errors,"
	"    ttft_sum = ttft_sum + excluded.ttft_sum, ttft_n = ttft_n + excluded.ttft_n,"
	"    duration_sum = duration_sum + excluded.duration_sum;"
	"END;",

	/* 16: the capacity generation moves only when what the view reads
	 * changed: a Kubernetes node's watch event rewrites its cards'
	 * last_seen_at (and sets gpus_used_other to what it was), which must
	 * not throw away a thousand cards read into memory */
	"DROP TRIGGER capacity_gpus_u;"
	"CREATE TRIGGER capacity_gpus_u AFTER UPDATE ON gpus WHEN OLD.present IS NOT NEW.present"
	"  OR OLD.node_id IS NOT NEW.node_id OR OLD.idx IS NOT NEW.idx OR OLD.name IS NOT NEW.name"
	"  OR OLD.memory_total IS NOT NEW.memory_total OR OLD.compute_capability IS NOT NEW.compute_capability"
	"  OR OLD.id IS NOT NEW.id BEGIN UPDATE capacity_gen SET cards = cards + 1; END;"
	"DROP TRIGGER capacity_nodes_u;"
	"CREATE TRIGGER capacity_nodes_u AFTER UPDATE ON nodes WHEN OLD.state IS NOT NEW.state"
	"  OR OLD.gpus_used_other IS NOT NEW.gpus_used_other OR OLD.id IS NOT NEW.id"
	"  BEGIN UPDATE capacity_gen SET cards = cards + 1; END;"
	"DROP TRIGGER capacity_res_u;"
	"CREATE TRIGGER capacity_res_u AFTER UPDATE ON gpu_reservations WHEN OLD.gpu_id IS NOT NEW.gpu_id"
	"  OR OLD.bytes IS NOT NEW.bytes OR OLD.owner_kind IS NOT NEW.owner_kind OR OLD.owner_id IS NOT NEW.owner_id"
	"  BEGIN UPDATE capacity_gen SET res = res + 1; END;",

	/* 17: the Kubernetes runtime: an engine's container image (admin-set;
	 * NULL: the engine's default), and where a cluster node is reached
	 * (its InternalIP, for NodePort services) */
	"ALTER TABLE engine_settings ADD COLUMN image TEXT;"
	"ALTER TABLE nodes ADD COLUMN address TEXT;"
	/* the capacity view now reads a node's taints (a tainted node is used
	 * only where pinned) and its kind (a cluster's cards are whole) */
	"DROP TRIGGER capacity_nodes_u;"
	"CREATE TRIGGER capacity_nodes_u AFTER UPDATE ON nodes WHEN OLD.state IS NOT NEW.state"
	"  OR OLD.gpus_used_other IS NOT NEW.gpus_used_other OR OLD.id IS NOT NEW.id"
	"  OR OLD.taints IS NOT NEW.taints OR OLD.gpu_source IS NOT NEW.gpu_source"
	"  BEGIN UPDATE capacity_gen SET cards = cards + 1; END;",

	/* 18: model downloads from the hubs (hub_models): the truth a restart
	 * resumes from; files: what the download chose (and may remove) */
	"CREATE TABLE downloads ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
	"  source TEXT NOT NULL, repo TEXT NOT NULL, revision TEXT NOT NULL, commit_id TEXT, endpoint TEXT NOT NULL,"
	"  dest TEXT NOT NULL, created_dir INTEGER NOT NULL DEFAULT 0, patterns TEXT, gguf TEXT,"
	"  state TEXT NOT NULL CHECK (state IN ('queued','running','paused','failed','succeeded','cancelled')),"
	"  bytes_done INTEGER NOT NULL DEFAULT 0, bytes_total INTEGER NOT NULL DEFAULT 0, files TEXT,"
	"  error TEXT NOT NULL DEFAULT '', task_id INTEGER, created_by TEXT NOT NULL DEFAULT '',"
	"  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, finished_at INTEGER);"
	"CREATE INDEX downloads_model ON downloads(model_id);",

	/* 19: the model market's cache of what hub repositories hold
	 * (hub_catalog): the facts built from a revision's file list and
	 * config, or why they could not be read */
	"CREATE TABLE hub_meta ("
	"  source TEXT NOT NULL, repo TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ('ready','failed')),"
	"  commit_id TEXT, facts TEXT, bytes INTEGER NOT NULL DEFAULT 0, files INTEGER NOT NULL DEFAULT 0,"
	"  info TEXT, error TEXT NOT NULL DEFAULT '', http_status INTEGER NOT NULL DEFAULT 0,"
	"  fetched_at INTEGER NOT NULL, PRIMARY KEY (source, repo));",

	/* 20: the LoRA adapters a running vLLM engine has loaded ([{name, path}];
	 * NULL: started without LoRA, so adapters need a restart): the
	 * reconciler loads and unloads at runtime until it matches the
	 * deployment's lora_modules */
	"ALTER TABLE instances ADD COLUMN lora_live TEXT;",

	/* 21: scale to zero (am_idle.c): after idle_after_s seconds without a
	 * request (0: never) the replicas stop and idle_at says since when (the
	 * deployment still wants to run: a request starts it again); woken_at:
	 * when the cold start under way began; cold_starts: the last ones' times
	 * (ms, newest last); evictable and priority: whether, and against whom,
	 * an on-demand start may stop it while it runs */
	"ALTER TABLE deployments ADD COLUMN idle_after_s INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE deployments ADD COLUMN evictable INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE deployments ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE deployments ADD COLUMN idle_at INTEGER;"
	"ALTER TABLE deployments ADD COLUMN idle_reason TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE deployments ADD COLUMN woken_at INTEGER;"
	"ALTER TABLE deployments ADD COLUMN used_at INTEGER;"
	"ALTER TABLE deployments ADD COLUMN cold_starts TEXT NOT NULL DEFAULT '[]';",

	/* 22: the usage sink rolls its records up itself, one upsert per hour,
	 * user, key, model and deployment of a drain instead of one per record
	 * (rolled = 1); any other writer's rows still go through the trigger */
	"ALTER TABLE usage_records ADD COLUMN rolled INTEGER NOT NULL DEFAULT 0;"
	"DROP TRIGGER usage_rollup;"
	"CREATE TRIGGER usage_rollup AFTER INSERT ON usage_records WHEN NEW.rolled = 0 BEGIN"
	"  INSERT INTO usage_hourly VALUES((NEW.at / 3600000) * 3600000, COALESCE(NEW.user_id, 0), COALESCE(NEW.key_id, 0),"
	"    NEW.model, COALESCE(NEW.deployment_id, 0), 1, NEW.prompt_tokens, NEW.completion_tokens, NEW.status >= 400,"
	"    CASE WHEN NEW.ttft_ms >= 0 THEN NEW.ttft_ms ELSE 0 END, COALESCE(NEW.ttft_ms >= 0, 0), NEW.duration_ms)"
	"  ON CONFLICT(hour_at, user_id, key_id, model, deployment_id) DO UPDATE SET requests = requests + 1, prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
	"    completion_tokens = completion_tokens + excluded.completion_tokens, errors = errors + excluded.errors,"
	"    ttft_sum = ttft_sum + excluded.ttft_sum, ttft_n = ttft_n + excluded.ttft_n,"
	"    duration_sum = duration_sum + excluded.duration_sum;"
	"END;",

	/* 23: usage rolled up by UTC day too, kept like usage_hourly (by the
	 * sink in its transaction, by the trigger for other writers): a month's
	 * usage is 30 days' groups, not 720 hours' (GET /usage reads whole days
	 * here, the hours at the edges from usage_hourly, the partial hours from
	 * the raw rows); both roll-ups outlive the raw rows' retention */
	"CREATE TABLE usage_daily ("
	"  day_at INTEGER NOT NULL, user_id INTEGER NOT NULL, key_id INTEGER NOT NULL, model TEXT NOT NULL,"
	"  deployment_id INTEGER NOT NULL, requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL,"
	"  completion_tokens INTEGER NOT NULL, errors INTEGER NOT NULL, ttft_sum REAL NOT NULL, ttft_n INTEGER NOT NULL,"
	"  duration_sum REAL NOT NULL, PRIMARY KEY (day_at, user_id, key_id, model, deployment_id)) WITHOUT ROWID;"
	"CREATE INDEX usage_daily_user ON usage_daily(user_id, day_at);"
	"INSERT INTO usage_daily SELECT (hour_at / 86400000) * 86400000, user_id, key_id, model, deployment_id,"
	"  SUM(requests), SUM(prompt_tokens), SUM(completion_tokens), SUM(errors), TOTAL(ttft_sum), SUM(ttft_n),"
	"  TOTAL(duration_sum) FROM usage_hourly GROUP BY 1, 2, 3, 4, 5;"
	"DROP TRIGGER usage_rollup;"
	"CREATE TRIGGER usage_rollup AFTER INSERT ON usage_records WHEN NEW.rolled = 0 BEGIN"
	"  INSERT INTO usage_hourly VALUES((NEW.at / 3600000) * 3600000, COALESCE(NEW.user_id, 0), COALESCE(NEW.key_id, 0),"
	"    NEW.model, COALESCE(NEW.deployment_id, 0), 1, NEW.prompt_tokens, NEW.completion_tokens, NEW.status >= 400,"
	"    CASE WHEN NEW.ttft_ms >= 0 THEN NEW.ttft_ms ELSE 0 END, COALESCE(NEW.ttft_ms >= 0, 0), NEW.duration_ms)"
	"  ON CONFLICT(hour_at, user_id, key_id, model, deployment_id) DO UPDATE SET requests = requests + 1,"
	"    prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
	"    completion_tokens = completion_tokens + excluded.completion_tokens, errors = errors + excluded.errors,"
	"    ttft_sum = ttft_sum + excluded.ttft_sum, ttft_n = ttft_n + excluded.ttft_n,"
	"    duration_sum = duration_sum + excluded.duration_sum;"
	"  INSERT INTO usage_daily VALUES((NEW.at / 86400000) * 86400000, COALESCE(NEW.user_id, 0), COALESCE(NEW.key_id, 0),"
	"    NEW.model, COALESCE(NEW.deployment_id, 0), 1, NEW.prompt_tokens, NEW.completion_tokens, NEW.status >= 400,"
	"    CASE WHEN NEW.ttft_ms >= 0 THEN NEW.ttft_ms ELSE 0 END, COALESCE(NEW.ttft_ms >= 0, 0), NEW.duration_ms)"
	"  ON CONFLICT(day_at, user_id, key_id, model, deployment_id) DO UPDATE SET requests = requests + 1,"
	"    prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
	"    completion_tokens = completion_tokens + excluded.completion_tokens, errors = errors + excluded.errors,"
	"    ttft_sum = ttft_sum + excluded.ttft_sum, ttft_n = ttft_n + excluded.ttft_n,"
	"    duration_sum = duration_sum + excluded.duration_sum;"
	"END;",

	/* 24: the usage sink's insert costs a B-tree per index: a journal
	 * file is folded in one transaction, so "folded already" is kept per
	 * file (usage_journals, a row from the commit until the sink sees the
	 * file gone) instead of a UNIQUE index on every record's id; nothing
	 * reads the raw rows by key or deployment (GET /usage reads them by
	 * time and user), so those two indexes go too. Old rows keep their jid */
	"DROP INDEX IF EXISTS usage_jid;"
	"DROP INDEX IF EXISTS usage_key;"
	"DROP INDEX IF EXISTS usage_deployment;"
	"CREATE TABLE usage_journals (id TEXT PRIMARY KEY, folded_at INTEGER NOT NULL) WITHOUT ROWID;",

	/* 25: usage by the minute, where GET /usage reads the edges of its
	 * range (whole days from usage_daily, whole hours from usage_hourly,
	 * the minutes at the edges here; a range covers the minutes it
	 * touches), kept by the sink in its transaction and by the trigger for
	 * other writers, pruned at the raw rows' retention. The gateway's
	 * records no longer become a row each: the sink's cost is a few upserts
	 * per group and drain rather than a B-tree insert per index and request,
	 * and the SQLite work per request is what made the p99 of a saturated
	 * gateway on a small machine higher than nginx's. usage_records stays
	 * for the rows written before, and other writers */
	"CREATE TABLE usage_minutely ("
	"  minute_at INTEGER NOT NULL, user_id INTEGER NOT NULL, key_id INTEGER NOT NULL, model TEXT NOT NULL,"
	"  deployment_id INTEGER NOT NULL, requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL,"
	"  completion_tokens INTEGER NOT NULL, errors INTEGER NOT NULL, ttft_sum REAL NOT NULL, ttft_n INTEGER NOT NULL,"
	"  duration_sum REAL NOT NULL, PRIMARY KEY (minute_at, user_id, key_id, model, deployment_id)) WITHOUT ROWID;"
	"CREATE INDEX usage_minutely_user ON usage_minutely(user_id, minute_at);"
	"INSERT INTO usage_minutely SELECT (at / 60000) * 60000, COALESCE(user_id, 0), COALESCE(key_id, 0), model,"
	"  COALESCE(deployment_id, 0), COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(status >= 400),"
	"  TOTAL(CASE WHEN ttft_ms >= 0 THEN ttft_ms END), COUNT(CASE WHEN ttft_ms >= 0 THEN 1 END), TOTAL(duration_ms)"
	"  FROM usage_records GROUP BY 1, 2, 3, 4, 5;"
	"DROP TRIGGER usage_rollup;"
	"CREATE TRIGGER usage_rollup AFTER INSERT ON usage_records WHEN NEW.rolled = 0 BEGIN"
	ROLLUP_ROW("usage_minutely", "minute_at", "60000")
	ROLLUP_ROW("usage_hourly", "hour_at", "3600000")
	ROLLUP_ROW("usage_daily", "day_at", "86400000")
	"END;",
};

const char *const *am_migrations_list(size_t *count)
{
	*count = sizeof migrations / sizeof migrations[0];
	return migrations;
}
