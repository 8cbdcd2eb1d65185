/* The unit-test runner: every suite, then a closing line CI can read. */
#include <stdlib.h>

#include "am_test.h"
#include "base/am_log.h"
#include "base/am_rand.h"
#include "store/am_store.h"

#include <unistd.h>

int am_test_failed_checks, am_test_passed, am_test_failed;

void suite_base(void);
void suite_http(void);
void suite_gpu(void);
void suite_store(void);
void suite_backup(void);
void suite_auth(void);
void suite_dataset(void);
void suite_finetune(void);
void suite_gateway(void);
void suite_engine(void);
void suite_model(void);
void suite_work(void);
void suite_proc(void);
void suite_usage(void);
void suite_sim_schema(void);
void suite_sim_text(void);
void suite_sim_metrics(void);
void suite_states(void);
void suite_sched(void);
void suite_runtime(void);
void suite_routes(void);
void suite_due(void);
void suite_deploy_verbs(void);
void suite_kube(void);
void suite_hub(void);
void suite_msg(void);
void suite_conf(void);
void suite_cli(void);

char *am_test_read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *s = malloc((size_t)n + 1);
	if (fread(s, 1, (size_t)n, f) != (size_t)n)
		n = 0;
	s[n] = '\0';
	fclose(f);
	return s;
}

struct am_store *am_test_db_open(const char *tag, char *path, size_t size)
{
	snprintf(path, size, "/tmp/aimaas-unit-%s-%d.db", tag, (int)getpid());
	unlink(path);
	struct am_store *s = NULL;
	char err[256];
	if (am_store_open(path, &s, err, sizeof err) != 0)
		fprintf(stderr, "    open %s: %s\n", path, err);
	return s;
}

void am_test_db_drop(struct am_store *s, const char *path)
{
	static const char *const suffix[] = { "", "-wal", "-shm" };
	am_store_close(s);
	for (int i = 0; i < 3; i++) {
		char p[300];
		snprintf(p, sizeof p, "%s%s", path, suffix[i]);
		unlink(p);
	}
}

int main(void)
{
	am_log_set_level(AM_LOG_ERROR);
	am_rand_init();
	suite_base();
	suite_http();
	suite_gpu();
	suite_store();
	suite_backup();
	suite_auth();
	suite_dataset();
	suite_finetune();
	suite_gateway();
	suite_engine();
	suite_model();
	suite_work();
	suite_proc();
	suite_usage();
	suite_sim_schema();
	suite_sim_text();
	suite_sim_metrics();
	suite_states();
	suite_sched();
	suite_runtime();
	suite_routes();
	suite_due();
	suite_deploy_verbs();
	suite_kube();
	suite_hub();
	suite_msg();
	suite_conf();
	suite_cli();
	printf("unit: %d passed, %d failed\n", am_test_passed, am_test_failed);
	return am_test_failed ? 1 : 0;
}
