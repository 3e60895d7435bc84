/* lib/io/manifest.h — the sample manifest (JSONL, one sample per line; DESIGN §4).
 *
 *   {"id": "coco_123", "image": "val2014/COCO_val2014_000000000123.jpg",
 *    "caption": "a cat on a sofa",
 *    "conversations": [{"role": "user", "content": "<image>\nWhat is this?"},
 *                      {"role": "assistant", "content": "A cat."}]}
 *
 * Fields: id (required; a string, or an integer converted to its decimal text; 1..1024
 * bytes, no control characters, since it becomes a record id), image (string,
 * optional), caption (string, optional), conversations (array, optional) of
 * {"role": "user"|"assistant"|"system", "content": string} or the LLaVA form
 * {"from": "human"|"gpt"|"system", "value": string}; "user"/"assistant" are accepted
 * in "from" too. Roles are normalised to LVD_ROLE_*. null counts as absent; other
 * fields are ignored.
 *
 * The reader streams the file line by line (lines up to 16 MiB by default), skips
 * blank lines, strips a UTF-8 BOM and "\r\n" endings, checks UTF-8 explicitly before
 * parsing, and reports errors as "path:LINE: what" naming the field. A file whose first
 * non-blank byte is '[' is read as one JSON array of samples instead (the Lavender
 * repository's format, e.g. ocrvqa30k.json); errors then say "path: element N: what"
 * (N counted from 1). "-" reads stdin (JSONL only). */
#ifndef LVD_IO_MANIFEST_H
#define LVD_IO_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lvd_role {
	LVD_ROLE_SYSTEM = 0,
	LVD_ROLE_USER = 1,
	LVD_ROLE_ASSISTANT = 2,
};

struct lvd_turn {
	int role;       /* enum lvd_role */
	char *content;  /* owned by the sample */
};

struct lvd_sample {
	char *id;                /* never NULL after a successful read */
	char *image;             /* NULL when absent */
	char *caption;           /* NULL when absent */
	struct lvd_turn *turns;  /* n_turns entries, in file order */
	size_t n_turns;
	uint64_t line;           /* 1-based line (JSONL) or element number (JSON array) */
};

/* How the SD text of a sample is chosen (--text-field). */
enum lvd_text_field {
	LVD_TEXT_AUTO = 0,      /* caption if present, else the assistant turns */
	LVD_TEXT_CAPTION,       /* the caption (required) */
	LVD_TEXT_ASSISTANT,     /* the assistant turns */
	LVD_TEXT_ALL,           /* user and assistant turns (system excluded) */
};

struct lvd_manifest_opts {
	size_t max_line;        /* bytes; 0 -> 16 MiB */
	size_t max_file;        /* JSON-array files: bytes; 0 -> 1 GiB */
	int id_from_image;      /* a sample without "id" takes its "image" string as id */
};

struct lvd_manifest;

#define LVD_MANIFEST_EOF (-1)

/* Opens a manifest (opts may be NULL). Errors: LVD_ERR_IO (open/read), and for JSON
 * array files everything the whole-file parse finds (LVD_ERR_FORMAT with line and
 * column), LVD_ERR_INVALID (over max_file). */
int lvd_manifest_open(struct lvd_manifest **out, const char *path,
		      const struct lvd_manifest_opts *opts, struct lvd_error *err);

/* Reads the next sample into *s. s must be zero-initialised before the first call;
 * each call releases what s held before. Returns LVD_OK, LVD_MANIFEST_EOF, or an
 * error for one line/element: LVD_ERR_FORMAT (invalid JSON or UTF-8, line too long) or
 * LVD_ERR_INVALID (missing/ill-typed field); after those the next call continues with
 * the following line (callers count bad lines and go on with --keep-going).
 * LVD_ERR_IO / LVD_ERR_NOMEM mean stop. */
int lvd_manifest_next(struct lvd_manifest *m, struct lvd_sample *s, struct lvd_error *err);

/* Lines (or elements) consumed so far, blank lines included. */
uint64_t lvd_manifest_position(const struct lvd_manifest *m);

void lvd_manifest_close(struct lvd_manifest *m);

/* Parses one JSONL line (len bytes, no newline) into *s (released first). `where` is
 * the message prefix, e.g. "data.jsonl:17". Same errors as lvd_manifest_next; the
 * line must not be blank. */
int lvd_manifest_parse_line(const char *where, const char *text, size_t len,
			    const struct lvd_manifest_opts *opts, struct lvd_sample *s,
			    struct lvd_error *err);

/* Frees what s holds and zeroes it. */
void lvd_sample_clear(struct lvd_sample *s);

/* The text fed to Stable Diffusion for s, as a new malloc'd string (caller frees).
 * Pieces (the caption, or the selected turns in order) have the "<image>" placeholder
 * removed and surrounding whitespace trimmed; empty pieces are dropped; the rest are
 * joined with a single space " ". Errors (LVD_ERR_INVALID, message "sample 'ID': ..."
 * for the caller to prefix with file:line): field caption without a caption, or an
 * empty result. */
int lvd_sample_sd_text(const struct lvd_sample *s, int field, char **out, struct lvd_error *err);

/* "auto" | "caption" | "assistant" | "all" -> enum lvd_text_field; LVD_ERR_INVALID
 * otherwise. */
int lvd_text_field_parse(const char *name, int *field, struct lvd_error *err);

/* "system" | "user" | "assistant" (or "?"). */
const char *lvd_role_name(int role);

#ifdef __cplusplus
}
#endif
#endif
