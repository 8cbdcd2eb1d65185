/* sim_text: the simulator's answers in the question's language, and
 * relevance and embeddings that work for CJK text. The module is included,
 * as it lives in sim/ rather than in the library. */
#include "am_test.h"

#include "../../sim/sim_text.c"

static int has(const struct am_buf *b, const char *s)
{
	return b->data && strstr(b->data, s) != NULL;
}

static void answers_in_the_questions_language(void)
{
	struct am_buf a, b;
	am_buf_init(&a, 1 << 20);
	am_buf_init(&b, 1 << 20);
	const char *zq = "北京今天的天气怎么样？";
	sim_answer(zq, strlen(zq), 7, 200, &a);
	CHECK_INT(sim_count_tokens(a.data, a.len), 200);
	CHECK(has(&a, "「北京今天的天气怎么样」"));
	CHECK(has(&a, "模拟器"));
	CHECK(has(&a, "- **问题**：北京今天的天气怎么样"));
	CHECK(!has(&a, "the "));
	CHECK(am_utf8_valid(a.data, a.len));
	sim_answer(zq, strlen(zq), 7, 200, &b);
	CHECK_STR(am_buf_str(&a), am_buf_str(&b)); /* the same question and seed */
	am_buf_reset(&b);
	sim_answer(zq, strlen(zq), 7, 10, &b);
	CHECK_INT(sim_count_tokens(b.data, b.len), 10);
	CHECK(!strncmp(a.data, b.data, b.len)); /* a shorter answer is the start of the longer */
	am_buf_reset(&b);
	sim_answer(zq, strlen(zq), 8, 200, &b);
	CHECK(strcmp(am_buf_str(&a), am_buf_str(&b)) != 0); /* another seed, another answer */

	am_buf_reset(&a);
	const char *eq = "What does   aimaas do?";
	sim_answer(eq, strlen(eq), 7, 300, &a);
	CHECK_INT(sim_count_tokens(a.data, a.len), 300);
	CHECK(has(&a, "\"What does aimaas do\""));
	CHECK(has(&a, "- **Question**: What does aimaas do"));
	CHECK(!has(&a, "模拟器"));

	am_buf_reset(&a); /* a long question is quoted in part; mixed text goes by its majority */
	const char *mixed = "用 Python 写一个读取 CSV 文件并统计每一列平均值的函数，要求处理缺失值";
	sim_answer(mixed, strlen(mixed), 1, 100, &a);
	CHECK(has(&a, "「用 Python 写一个读取 CSV 文件并统计每一列平…」"));
	am_buf_reset(&a);
	sim_answer(NULL, 0, 1, 40, &a);
	CHECK(has(&a, "your question"));
	am_buf_free(&a);
	am_buf_free(&b);
}

static void relevance_for_cjk_and_latin(void)
{
	const char *q = "北京的天气";
	double beijing = sim_relevance(q, "北京天气预报：今天晴，最高气温 30 度。");
	double shanghai = sim_relevance(q, "上海股票市场今日收盘上涨。");
	CHECK(beijing > shanghai + 0.2);
	/* a short word counts less than a long one */
	double gpu = sim_relevance("What is a GPU?", "GPU memory holds the model.");
	double cats = sim_relevance("What is a GPU?", "Cats sleep a lot.");
	CHECK(gpu > cats);
	CHECK(sim_relevance("Hello", "hello world") > sim_relevance("Hello", "goodbye"));
}

static double cosine(const float *a, const float *b, size_t n)
{
	double d = 0;
	for (size_t i = 0; i < n; i++)
		d += (double)a[i] * b[i];
	return d;
}

static void embeddings_follow_shared_words(void)
{
	enum { DIM = 256 };
	float a[DIM], b[DIM], c[DIM], e[DIM];
	const char *x = "北京的天气", *y = "北京今天天气晴朗", *z = "上海股票上涨";
	sim_embed(x, strlen(x), a, DIM);
	sim_embed(y, strlen(y), b, DIM);
	sim_embed(z, strlen(z), c, DIM);
	CHECK(cosine(a, a, DIM) > 0.999 && cosine(a, a, DIM) < 1.001);
	CHECK(cosine(a, b, DIM) > cosine(a, c, DIM) + 0.2);
	sim_embed("!!!", 3, e, DIM); /* no features: still a unit vector */
	CHECK(cosine(e, e, DIM) > 0.999);
}

void suite_sim_text(void)
{
	RUN(answers_in_the_questions_language);
	RUN(relevance_for_cjk_and_latin);
	RUN(embeddings_follow_shared_words);
}
