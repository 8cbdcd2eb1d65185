/* am_msg: the messages an API user sees, in English and Simplified Chinese.
 * One table (am_msg_zh.c) maps each English printf template, exactly as it is
 * written where the message is made, to its Chinese template. Code keeps
 * writing English templates; whoever formats one (am_err_set, am_msg_fmt,
 * am_msg_buf_printf) also formats its Chinese form with the same arguments,
 * and the API answers the one the request's Accept-Language asks for.
 *
 * A Chinese template takes the same arguments as its English one, in order,
 * or reorders them with glibc's positional conversions ("%2$s ... %1$d"):
 * then every conversion in it is positional and every argument is used.
 * Entries that break this are dropped when the index is built (and fail the
 * unit test), so a mistranslation can never read an argument wrongly.
 *
 * tests/integration/messages.test.mjs finds every literal template passed to
 * am_err_set, am_msg_fmt, am_msg_zhf, am_msg_buf_printf, AM_MSG_W, the
 * planner's refuse() and the dataset check's say() and fails when one has
 * no Chinese entry. Log messages stay English. */
#ifndef AM_MSG_H
#define AM_MSG_H

#include <stdarg.h>
#include <stddef.h>

#include "am_buf.h"

enum am_lang { AM_LANG_EN, AM_LANG_ZH };

/* The language an Accept-Language header asks for: Chinese when a "zh"
 * range (zh, zh-CN, zh-Hans, zh-TW, ...) has a q-value above 0 and above
 * every other range's (on a tie, the one listed first); English otherwise,
 * also for NULL or a header that does not parse. */
enum am_lang am_msg_lang(const char *accept_language);

/* The Chinese template of the English template en (compared as strings),
 * or NULL when the table has none. Thread-safe: the first call builds the
 * index (once). */
const char *am_msg_zh(const char *en);

/* Formats the Chinese form of the template en with ap into zh (cut at a
 * whole UTF-8 character). 1 when the table has one; 0 with zh "" when not. */
int am_msg_vzh(char *zh, size_t size, const char *en, va_list ap);

/* Formats fmt into en and its Chinese form into zh (the English text when
 * the table has no Chinese form). Both are cut to valid UTF-8. */
void am_msg_fmt(char *en, size_t ensize, char *zh, size_t zhsize, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Formats the Chinese form of en with these arguments into zh (for a
 * message whose arguments differ by language: am_msg_word). 1, or 0 with
 * zh untouched when the table has none. */
int am_msg_zhf(char *zh, size_t size, const char *en, ...) __attribute__((format(printf, 3, 4)));

/* Marks a literal word or phrase passed as an argument to a template (a
 * "what" such as "user"): the test finds it and wants its Chinese entry. */
#define AM_MSG_W(s) (s)
/* The Chinese form of such a word (a template without conversions), or en
 * itself when the table has none. */
const char *am_msg_word(const char *en);

/* Marks a literal template that code formats in English only and stores (a
 * deployment's reason, a task's message): the API translates the stored
 * text when it is read (am_msg_translate), and the test wants its entry. */
#define AM_MSG_T(s) (s)
/* The Chinese form of en, a text made of one or more of the table's
 * templates formatted in English one after another (am_msg_tr.c says how it
 * is matched): 1 with it in zh (cut to valid UTF-8), 0 with zh "" when some
 * part of en matches no template. */
int am_msg_translate(const char *en, char *zh, size_t size);

/* A message in both languages, built piece by piece (the planner's
 * refusals): each piece is a template of the table. Both buffers have the
 * same cap; a piece that does not fit is dropped from that language. */
struct am_msg_buf {
	struct am_buf en, zh;
};
void am_msg_buf_init(struct am_msg_buf *b, size_t max);
void am_msg_buf_printf(struct am_msg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void am_msg_buf_free(struct am_msg_buf *b);

/* 0 when the Chinese template zh takes exactly the arguments of en (same
 * count and types, positionally or in order, every one used); -1 with why.
 * Both must be templates this module accepts (no %n, no mixing of
 * positional and plain conversions). */
int am_msg_check(const char *en, const char *zh, char *why, size_t size);

/* The table's entry i (in source order): 1 with *en and *zh, 0 past its end.
 * For tests. */
int am_msg_entry(size_t i, const char **en, const char **zh);

/* The table itself, in am_msg_zh.c (internal). */
struct am__msg {
	const char *en, *zh;
};
extern const struct am__msg am__msg_table[];
extern const size_t am__msg_count;

#endif
