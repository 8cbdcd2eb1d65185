/* Unit tests: am_msg (the messages' Chinese forms), and the bilingual
 * messages of am_err, the planner and the dataset check. */
#include <stdlib.h>
#include <string.h>

#include "am_test.h"
#include "base/am_buf.h"
#include "base/am_err.h"
#include "base/am_msg.h"
#include "finetune/am_dataset.h"
#include "sched/am_planner.h"

/* The table as compiled: every entry's Chinese takes its English's
 * arguments, is valid UTF-8 and is found; no English twice. */
static void msg_table_is_sound(void)
{
	const char *en, *zh;
	size_t n = 0;
	for (size_t i = 0; am_msg_entry(i, &en, &zh); i++, n++) {
		char why[160] = "";
		if (am_msg_check(en, zh, why, sizeof why) != 0) {
			fprintf(stderr, "    entry %zu \"%s\": %s\n", i, en, why);
			CHECK(0);
		}
		CHECK(zh[0] && am_utf8_valid(zh, strlen(zh)));
		CHECK(am_msg_zh(en) == zh);
		const char *en2, *zh2;
		for (size_t k = i + 1; am_msg_entry(k, &en2, &zh2); k++)
			if (!strcmp(en, en2)) {
				fprintf(stderr, "    \"%s\" is in the table twice\n", en);
				CHECK(0);
			}
	}
	CHECK(n > 300);
	CHECK(am_msg_zh("no such template %d") == NULL);
	CHECK(am_msg_zh("%s") == NULL); /* a pass-through stays whatever it passes */
}

static void msg_check_compares_arguments(void)
{
	char why[160];
	CHECK_INT(am_msg_check("'%s' must be between %lld and %lld", "'%s' 必须在 %lld 到 %lld 之间", why, sizeof why), 0);
	CHECK_INT(am_msg_check("%s needs %d GPU(s)", "需要 %2$d 张 GPU：%1$s", why, sizeof why), 0);
	CHECK_INT(am_msg_check("%s may not set %.*s", "%1$s 不能设置 %3$.*2$s", why, sizeof why), 0);
	CHECK_INT(am_msg_check("has %d GPU%s", "有 %1$d 张 GPU%2$.0s", why, sizeof why), 0);
	CHECK_INT(am_msg_check("100%% of %s", "%s 的 100%%", why, sizeof why), 0);
	CHECK_INT(am_msg_check("%s needs %d", "需要 %d：%s", why, sizeof why), -1); /* swapped without positions */
	CHECK(strstr(why, "argument 1"));
	CHECK_INT(am_msg_check("%lld keys", "%d 个密钥", why, sizeof why), -1);
	CHECK_INT(am_msg_check("%s and %s", "%s", why, sizeof why), -1);
	CHECK_INT(am_msg_check("%s and %d", "%1$s 和 %d", why, sizeof why), -1); /* mixed */
	CHECK_INT(am_msg_check("%s and %d", "%2$d", why, sizeof why), -1);       /* 1 unused */
	CHECK_INT(am_msg_check("%s", "%n", why, sizeof why), -1);
	CHECK_INT(am_msg_check("%d", "%", why, sizeof why), -1);
}

static void msg_lang_reads_accept_language(void)
{
	CHECK_INT(am_msg_lang(NULL), AM_LANG_EN);
	CHECK_INT(am_msg_lang(""), AM_LANG_EN);
	CHECK_INT(am_msg_lang("zh"), AM_LANG_ZH);
	CHECK_INT(am_msg_lang("zh-CN"), AM_LANG_ZH);
	CHECK_INT(am_msg_lang("ZH-hans-CN"), AM_LANG_ZH);
	CHECK_INT(am_msg_lang("zh-CN,zh;q=0.9,en;q=0.8"), AM_LANG_ZH);
	CHECK_INT(am_msg_lang("en-US,en;q=0.9,zh-CN;q=0.8"), AM_LANG_EN);
	CHECK_INT(am_msg_lang("en;q=0.5, zh-TW;q=0.7"), AM_LANG_ZH);
	CHECK_INT(am_msg_lang("zh;q=0"), AM_LANG_EN);
	CHECK_INT(am_msg_lang("en, zh"), AM_LANG_EN); /* a tie: the first listed */
	CHECK_INT(am_msg_lang("zh, en"), AM_LANG_ZH);
	CHECK_INT(am_msg_lang("*"), AM_LANG_EN);
	CHECK_INT(am_msg_lang("zhx, zu"), AM_LANG_EN); /* not zh */
	CHECK_INT(am_msg_lang("zh;q=abc"), AM_LANG_EN);
	CHECK_INT(am_msg_lang(";;,,q=,zh-CN ; q=1.0"), AM_LANG_ZH);
}

static void msg_err_has_both(void)
{
	struct am_err e;
	am_err_clear(&e);
	CHECK_INT(am_err_set(&e, AM_E_INVALID, "n", "'%s' must be between %lld and %lld", "n", 1LL, 9LL), -1);
	CHECK_STR(e.msg, "'n' must be between 1 and 9");
	CHECK_STR(e.msg_zh, "'n' 必须在 1 到 9 之间");
	CHECK_STR(e.field, "n");
	am_err_set(&e, AM_E_INVALID, "", "a message with no %s", "entry");
	CHECK_STR(e.msg, "a message with no entry");
	CHECK_STR(e.msg_zh, "");
	am_err_set_text(&e, AM_E_CONFLICT, "gpus", "in English", "中文");
	CHECK_STR(e.msg, "in English");
	CHECK_STR(e.msg_zh, "中文");
	CHECK_INT(e.code, AM_E_CONFLICT);
	/* reordered arguments, and a word of the table as an argument */
	am_err_set(&e, AM_E_NOT_FOUND, "", "no %s with id '%.60s'", "user", "x7");
	am_msg_zhf(e.msg_zh, sizeof e.msg_zh, "no %s with id '%.60s'", am_msg_word("user"), "x7");
	CHECK_STR(e.msg, "no user with id 'x7'");
	CHECK_STR(e.msg_zh, "没有 id 为 'x7' 的用户");
	CHECK_STR(am_msg_word("not a word of the table"), "not a word of the table");
	/* cut at a whole character */
	char zh[12], en[64];
	am_msg_fmt(en, sizeof en, zh, sizeof zh, "could not read users");
	CHECK_STR(en, "could not read users");
	CHECK_STR(zh, "无法读"); /* 3 characters of 3 bytes fit in 11 */
}

static void msg_buf_builds_both(void)
{
	struct am_msg_buf b;
	am_msg_buf_init(&b, 256);
	am_msg_buf_printf(&b, "; ");
	am_msg_buf_printf(&b, "GPU %d of %s", 3, "node-b");
	am_msg_buf_printf(&b, " has %.1f GiB free", 2.5);
	am_msg_buf_printf(&b, " [untranslated %d]", 7);
	CHECK_STR(am_buf_str(&b.en), "; GPU 3 of node-b has 2.5 GiB free [untranslated 7]");
	CHECK_STR(am_buf_str(&b.zh), "；node-b 上的 GPU 3 剩余 2.5 GiB [untranslated 7]");
	am_msg_buf_free(&b);
}

static void msg_planner_refuses_in_both(void)
{
	char zh[512];
	struct am_plan p;
	struct am_plan_req r;
	memset(&r, 0, sizeof r);
	r.model = "m";
	r.tp = 1;
	r.replicas = 1;
	r.need = (uint64_t)GIB;
	am_planner_plan(NULL, 0, &r, &p);
	CHECK_INT(p.ok, 0);
	CHECK_STR(p.reason, "there are no GPUs: m needs 1 GPU(s) with 1.0 GiB each");
	CHECK_STR(p.reason_zh, "没有 GPU：m 需要 1 张 GPU，每张 1.0 GiB");
	CHECK(am_msg_translate(p.reason, zh, sizeof zh) == 1 && !strcmp(zh, p.reason_zh)); /* the same, read back */
	struct am_plan_gpu g;
	memset(&g, 0, sizeof g);
	am_strlcpy(g.node, "local", sizeof g.node);
	am_strlcpy(g.name, "H100", sizeof g.name);
	am_strlcpy(g.holders, "x", sizeof g.holders);
	g.total = (uint64_t)(10 * GIB);
	g.reserved = (uint64_t)(8 * GIB);
	r.need = (uint64_t)(5 * GIB);
	r.npinned = 1;
	r.pinned[0] = 0;
	am_planner_plan(&g, 1, &r, &p);
	CHECK_INT(p.ok, 0);
	CHECK_STR(p.field, "gpus");
	CHECK_STR(p.reason, "needs 5.0 GiB on each pinned GPU; GPU 0 (H100) has 2.0 GiB free (reserved by x)");
	CHECK_STR(p.reason_zh, "每张指定的 GPU 需要 5.0 GiB；GPU 0（H100）仅剩 2.0 GiB 可用（已被 x 预留）");
	CHECK(am_msg_translate(p.reason, zh, sizeof zh) == 1 && !strcmp(zh, p.reason_zh)); /* the same, read back */
}

static void msg_dataset_reasons_in_both(void)
{
	const char *data = "[1, {\"instruction\": \"q\"}]";
	json_t *rep = am_dataset_check(data, strlen(data), AM_DS_JSON, "alpaca", NULL);
	json_t *errors = json_object_get(rep, "errors");
	CHECK_INT(json_array_size(errors), 2);
	json_t *e0 = json_array_get(errors, 0), *e1 = json_array_get(errors, 1);
	CHECK_STR(json_string_value(json_object_get(e0, "reason")), "a record must be an object");
	CHECK_STR(json_string_value(json_object_get(e0, "reason_zh")), "每条记录必须是对象");
	CHECK_STR(json_string_value(json_object_get(e1, "reason")), "missing 'output'");
	CHECK_STR(json_string_value(json_object_get(e1, "reason_zh")), "缺少 'output'");
	json_decref(rep);
}

/* Stored English read back in Chinese: one template, several one after
 * another (the planner's refusal, as built piece by piece), a message
 * inside a message; names in quotes stay; text of no template stays
 * English. */
static void msg_translate_reads_stored_text(void)
{
	char zh[512];
	CHECK_INT(am_msg_translate("'lr' must be a number, got 'abc'", zh, sizeof zh), 1);
	CHECK_STR(zh, "'lr' 必须是数字，收到的是 'abc'");
	/* an argument of one word is a name when read back (the API answers
	 * this error's own Chinese, made with the word translated) */
	CHECK_INT(am_msg_translate("no user with id '7'", zh, sizeof zh), 1);
	CHECK_STR(zh, "没有 id 为 '7' 的user");
	CHECK_INT(am_msg_translate("evicted to make room for idle (least recently used)", zh, sizeof zh), 1);
	CHECK(strstr(zh, "idle") != NULL);
	CHECK_INT(am_msg_translate("'user' must be a number, got 'user'", zh, sizeof zh), 1);
	CHECK_STR(zh, "'user' 必须是数字，收到的是 'user'");
	CHECK_INT(am_msg_translate("needs 5.0 GiB on each pinned GPU; GPU 0 (H100) has 2.0 GiB free (reserved by x)", zh,
				   sizeof zh),
		  1);
	CHECK_STR(zh, "每张指定的 GPU 需要 5.0 GiB；GPU 0（H100）仅剩 2.0 GiB 可用（已被 x 预留）");
	CHECK_INT(am_msg_translate("Traceback (most recent call last)", zh, sizeof zh), 0);
	CHECK_STR(zh, "");
	CHECK_INT(am_msg_translate("", zh, sizeof zh), 0);
	CHECK_INT(am_msg_translate("no user with id '7' and then some", zh, sizeof zh), 0);
}

/* The reasons and task messages the server stores, as its code writes
 * them (deploy, idle, runtimes, fine-tuning, datasets, downloads), read
 * back in Chinese; an engine's own output inside one stays as it is. */
static void msg_stored_reasons_read_back(void)
{
	static const char *const cases[][2] = {
		{ "gave up after 5 failed starts: exit 1", "启动失败 5 次后放弃：退出码 1" },
		{ "gave up after 3 failed starts: exit 1: torch.OutOfMemoryError: CUDA out of memory",
		  "启动失败 3 次后放弃：退出码 1：torch.OutOfMemoryError: CUDA out of memory" },
		{ "killed by signal 9 (Killed)", "被信号 9（Killed）终止" },
		{ "OOMKilled (exit 137)", "OOMKilled（退出码 137）" },
		{ "idle for 30 min", "已空闲 30 分钟" },
		{ "idle for 2 h", "已空闲 2 小时" },
		{ "evicted to make room for big (least recently used)", "为给 big 腾出空间而被驱逐（最久未使用）" },
		{ "starting on demand: a request is waiting", "按需启动：有请求在等待" },
		{ "no room on the GPUs now: starts on its first request", "GPU 当前没有空间：将在收到第一个请求时启动" },
		{ "did not become healthy within 30 minutes", "30 分钟内未通过健康检查" },
		{ "no runtime 'kube:c1' for node c1:n1", "节点 c1:n1 没有运行时 'kube:c1'" },
		{ "fetching the model onto node gpu-2: 40% of 1.5 GiB", "正在将模型拉取到节点 gpu-2：40%，共 1.5 GiB" },
		{ "24 records, valid", "24 条记录，有效" },
		{ "3 records, invalid", "3 条记录，无效" },
		{ "the trainer ended with exit 1: ValueError: bad dataset", "训练进程以 退出码 1 结束：ValueError: bad dataset" },
		{ "the trainer ended with an unknown status", "训练进程以 未知状态 结束" },
		{ "stopped at step 40 of 100; resume continues from the last checkpoint",
		  "已在第 40 步（共 100 步）停止；恢复时将从最后一个检查点继续" },
		{ "waiting for GPUs: no GPUs are known yet", NULL },
		{ "superseded by a newer action", "已被更新的操作取代" },
		{ "restarting with the new settings", "正在以新设置重启" },
		{ "2.0 of 14.5 GiB", "2.0 / 14.5 GiB" },
		{ "cancelled; its files were removed", "已取消；其文件已删除" },
		{ "succeeded", "已成功" },
		{ "queued", "排队中" },
		{ "the API server could not be reached: Connection refused", "无法连接 API 服务器：Connection refused" },
		{ "config.json is not valid JSON: '[' or '{' expected near end of file (line 1)",
		  "config.json 不是有效的 JSON：'[' or '{' expected near end of file（第 1 行）" },
	};
	char zh[1024];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int ok = am_msg_translate(cases[i][0], zh, sizeof zh);
		if (!cases[i][1]) { /* its argument is the planner's: whatever it is, the template reads */
			CHECK_INT(strncmp(zh, "等待 GPU：", strlen("等待 GPU：")), 0);
			continue;
		}
		CHECK_INT(ok, 1);
		CHECK_STR(zh, cases[i][1]);
	}
}

void suite_msg(void)
{
	RUN(msg_table_is_sound);
	RUN(msg_check_compares_arguments);
	RUN(msg_lang_reads_accept_language);
	RUN(msg_err_has_both);
	RUN(msg_buf_builds_both);
	RUN(msg_planner_refuses_in_both);
	RUN(msg_dataset_reasons_in_both);
	RUN(msg_translate_reads_stored_text);
	RUN(msg_stored_reasons_read_back);
}
