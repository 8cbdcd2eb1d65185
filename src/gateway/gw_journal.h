/* gw_journal: the usage journal's files. A worker appends each finished
 * request's usage record to its own file before the client can see the end
 * of the answer, so a crash of aimaas (kill -9) loses none: the file's room
 * for a batch is allocated when it is created and mapped shared, so an
 * append is a copy into the page cache, no system call (what a process
 * wrote there outlives it as a write() would; no fsync: an OS crash may
 * lose the last records, as the database's synchronous=NORMAL may). Where
 * the room cannot be mapped, each append is one pwrite(). A drain
 * (gw_usage, on the usage sink's thread) reads a closed file back, hands
 * its records to the sink and deletes the file once they are written.
 *
 * A record is fixed-size: magic, payload length, payload (native byte order:
 * the journal is read back on the host that wrote it), FNV-1a checksum. A
 * failed (short) append is cut off again, so a file holds whole records
 * with at most a torn tail (a crash of the machine), which the reader
 * detects and skips. Each record carries a unique id ("<file id>.<seq>")
 * that the sink keeps UNIQUE, so draining a file twice counts nothing twice. */
#ifndef GW_JOURNAL_H
#define GW_JOURNAL_H

#include <stddef.h>
#include <sys/types.h>

#include "am_gateway.h"

#define GW_JREC_SIZE 297 /* bytes of one record on disk */

/* One open journal file, owned by one worker. */
struct gw_jfile {
	int fd;            /* -1: none open */
	int broken;        /* a failed append could not be cut off: append no more */
	int open_errno;    /* why the last gw_journal_open failed */
	off_t off;         /* bytes of whole records in it */
	unsigned char *map; /* the file's room, mapped shared (NULL: appends are pwrite()s) */
	size_t cap;        /* bytes mapped */
	char id[24];       /* the file's random id, the prefix of its records' ids */
	char path[4200];
};

/* Creates dir (0700) when missing. 0, or -1 with errno. */
int gw_journal_mkdir(const char *dir);
/* Creates a new file with a fresh random id in dir (O_CLOEXEC, 0600),
 * with room for GW_UBATCH records allocated (a full disk fails here) and
 * mapped. 0, or -1 with errno (f->fd stays -1; f->id is set all
 * the same so records can still be named; a NULL or empty dir only does
 * that). */
int gw_journal_open(struct gw_jfile *f, const char *dir);
/* Appends one record. 0, or -1 with errno (ENOSPC, EDQUOT...): then the
 * file is as it was before the call, or marked broken. */
int gw_journal_append(struct gw_jfile *f, const struct am_usage_record *u);
/* Writes the mapped room's pages (zeros over zeros) so that appends to it
 * take no page fault: for a file made ahead of its use, on another
 * thread than the one that will append. */
void gw_journal_prefault(struct gw_jfile *f);
/* Closes the file (keeps it on disk, cut to its records). */
void gw_journal_close(struct gw_jfile *f);

/* The record's bytes (GW_JREC_SIZE of them). */
void gw_journal_encode(const struct am_usage_record *u, unsigned char out[GW_JREC_SIZE]);
/* 0 when rec holds a whole, intact record (then *u is filled), -1 if not. */
int gw_journal_decode(const unsigned char *rec, size_t n, struct am_usage_record *u);
/* Every intact record of a file, oldest first, up to the first torn or
 * corrupt one: *out (free it) holds *n of them, *skipped the bytes left
 * after them (not counting the zeros of room never written: a file a
 * killed aimaas left). 0, or -1 with errno when the file cannot be read. */
int gw_journal_read(const char *path, struct am_usage_record **out, int *n, size_t *skipped);

#endif
