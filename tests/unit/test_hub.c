/* hub_files: the hubs' listings parsed, paths checked, the files a
 * deployment needs chosen. */
#include <jansson.h>
#include <string.h>

#include "am_test.h"
#include "hub/hub_files.h"

static int has(const struct hub_files *f, const char *p)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->v[i].path, p))
			return 1;
	return 0;
}

static void paths(void)
{
	CHECK(hub_path_ok("config.json"));
	CHECK(hub_path_ok("original/params.json"));
	CHECK(!hub_path_ok(""));
	CHECK(!hub_path_ok("/etc/passwd"));
	CHECK(!hub_path_ok("../x"));
	CHECK(!hub_path_ok("a/../../x"));
	CHECK(!hub_path_ok("a//b"));
	CHECK(!hub_path_ok("a/./b"));
	CHECK(!hub_path_ok("a/"));
	CHECK(!hub_path_ok("a\\b"));
	CHECK(!hub_path_ok("a\nb"));
}

static void parse_hf(void)
{
	const char *page = "[{\"type\":\"directory\",\"oid\":\"x\",\"size\":0,\"path\":\"original\"},"
			   "{\"type\":\"file\",\"oid\":\"abc\",\"size\":12,\"path\":\"config.json\"},"
			   "{\"type\":\"file\",\"oid\":\"def\",\"size\":134,\"path\":\"model.safetensors\",\"lfs\":{\"oid\":"
			   "\"ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789\",\"size\":5000,\"pointerSize\":134}}]";
	struct hub_files f = { 0 };
	char err[256];
	CHECK(hub_files_parse_hf(page, strlen(page), &f, err, sizeof err) == 0);
	CHECK_INT(f.n, 2);
	CHECK_STR(f.v[0].path, "config.json");
	CHECK_STR(f.v[0].sha256, ""); /* a git blob id is not a sha256 */
	CHECK_INT(f.v[1].size, 5000);  /* the LFS size, not the pointer's */
	CHECK_STR(f.v[1].sha256, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
	const char *evil = "[{\"type\":\"file\",\"oid\":\"a\",\"size\":1,\"path\":\"../../.bashrc\"}]";
	CHECK(hub_files_parse_hf(evil, strlen(evil), &f, err, sizeof err) != 0);
	CHECK(hub_files_parse_hf("{}", 2, &f, err, sizeof err) != 0);
	const char *neg = "[{\"type\":\"file\",\"size\":-5,\"path\":\"x\"}]";
	CHECK(hub_files_parse_hf(neg, strlen(neg), &f, err, sizeof err) != 0);
	hub_files_free(&f);
}

static void parse_ms(void)
{
	const char *body = "{\"Code\":200,\"Data\":{\"Files\":[{\"Name\":\"config.json\",\"Path\":\"config.json\",\"Type\":\"blob\","
			   "\"Size\":10,\"Sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\"},"
			   "{\"Name\":\"sub\",\"Path\":\"sub\",\"Type\":\"tree\",\"Size\":0}]},\"Success\":true}";
	struct hub_files f = { 0 };
	char err[256];
	CHECK(hub_files_parse_ms(body, strlen(body), &f, err, sizeof err) == 0);
	CHECK_INT(f.n, 1);
	CHECK_INT(f.v[0].size, 10);
	CHECK(hub_files_parse_ms("{\"Code\":10010205001,\"Data\":null}", 33, &f, err, sizeof err) != 0);
	hub_files_free(&f);
}

static void add(struct hub_files *f, const char *p)
{
	char js[600];
	snprintf(js, sizeof js, "[{\"type\":\"file\",\"size\":1,\"path\":\"%s\"}]", p);
	char err[128];
	hub_files_parse_hf(js, strlen(js), f, err, sizeof err);
}

static void select_files(void)
{
	char err[512];
	/* safetensors present: no .bin, no original/, configs and tokenizer kept */
	struct hub_files f = { 0 };
	const char *all[] = { "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "merges.txt",
			      "vocab.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
			      "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
			      "original/consolidated.00.pth", "original/params.json", ".gitattributes", "LICENSE", NULL };
	for (const char **p = all; *p; p++)
		add(&f, *p);
	CHECK(hub_files_select(&f, NULL, NULL, err, sizeof err) > 0);
	CHECK(has(&f, "model-00002-of-00002.safetensors") && has(&f, "model.safetensors.index.json"));
	CHECK(has(&f, "tokenizer.json") && has(&f, "merges.txt") && has(&f, "generation_config.json"));
	CHECK(!has(&f, "pytorch_model.bin") && !has(&f, "original/consolidated.00.pth") && !has(&f, "original/params.json"));
	CHECK(!has(&f, "pytorch_model.bin.index.json")); /* the .bin's index goes with it */
	hub_files_free(&f);
	/* GGUF: the best usual quantisation, or the asked one; a missing one named with what exists */
	const char *gg[] = { "README.md", "Qwen2.5-7B-Instruct-Q2_K.gguf", "Qwen2.5-7B-Instruct-Q4_K_M.gguf",
			     "Qwen2.5-7B-Instruct-Q8_0.gguf", "mmproj-f16.gguf", NULL };
	for (const char **p = gg; *p; p++)
		add(&f, *p);
	CHECK(hub_files_select(&f, NULL, NULL, err, sizeof err) == 1);
	CHECK_STR(f.v[0].path, "Qwen2.5-7B-Instruct-Q4_K_M.gguf");
	hub_files_free(&f);
	for (const char **p = gg; *p; p++)
		add(&f, *p);
	CHECK(hub_files_select(&f, NULL, "q8_0", err, sizeof err) == 1);
	CHECK_STR(f.v[0].path, "Qwen2.5-7B-Instruct-Q8_0.gguf");
	hub_files_free(&f);
	for (const char **p = gg; *p; p++)
		add(&f, *p);
	CHECK(hub_files_select(&f, NULL, "Q6_K", err, sizeof err) < 0);
	CHECK(strstr(err, "no GGUF file with quantisation Q6_K") && strstr(err, "Q4_K_M.gguf"));
	hub_files_free(&f);
	/* patterns replace the choice; nothing matched is an error; no weights at all is one */
	add(&f, "config.json");
	add(&f, "model.safetensors");
	json_t *pat = json_pack("[s]", "*.json");
	CHECK(hub_files_select(&f, pat, NULL, err, sizeof err) == 1);
	json_decref(pat);
	hub_files_free(&f);
	add(&f, "README.md");
	CHECK(hub_files_select(&f, NULL, NULL, err, sizeof err) < 0);
	CHECK(strstr(err, "no model weights") != NULL);
	hub_files_free(&f);
}

void suite_hub(void)
{
	RUN(paths);
	RUN(parse_hf);
	RUN(parse_ms);
	RUN(select_files);
}
