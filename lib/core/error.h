/* lib/core/error.h — error reporting for lvd.
 *
 * Library functions never exit or print. A function that can fail on bad input
 * returns an int error code (0 = LVD_OK) and fills a caller-owned struct lvd_error
 * whose message names the file, record and field ("maps/attn-00003.lvdm: record 17:
 * zstd frame checksum mismatch"). Broken invariants (programming errors) use
 * LVD_ASSERT, which is always on (it does not vanish under NDEBUG) and aborts with
 * file:line. CUDA/cuBLAS/NCCL check macros live in lib/core/cuda_check.h. */
#ifndef LVD_CORE_ERROR_H
#define LVD_CORE_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum lvd_err {
	LVD_OK = 0,
	LVD_ERR_IO,          /* open/read/write/mmap/rename failed (errno text in message) */
	LVD_ERR_FORMAT,      /* a file's bytes are not what its format says (corrupt, truncated) */
	LVD_ERR_INVALID,     /* a value is out of range or inconsistent (bad option, bad record) */
	LVD_ERR_NOMEM,       /* allocation failed or a size overflowed */
	LVD_ERR_UNSUPPORTED, /* valid input we do not handle (e.g. an SDXL checkpoint) */
	LVD_ERR_NOTFOUND,    /* a named thing (tensor, key, record id, file) is absent */
	LVD_ERR__COUNT
};

#define LVD_ERROR_MSG_MAX 1024

struct lvd_error {
	int code;                     /* enum lvd_err; LVD_OK when nothing failed */
	char msg[LVD_ERROR_MSG_MAX];  /* NUL-terminated, no trailing newline */
	int transient;                /* 1: a failure of the machine, not of the input (errno
				       * EIO, ENOSPC, EDQUOT, EINTR, EAGAIN, ENFILE, EMFILE,
				       * ENOMEM, ETIMEDOUT, or LVD_ERR_NOMEM): the same call may
				       * succeed when retried, so a tool must not record the
				       * input as bad (lvd_shardrun stops instead of skipping) */
};

/* Sets code and the printf-formatted message; returns code so callers can write
 * `return lvd_error_set(err, LVD_ERR_FORMAT, "%s: bad magic", path);`.
 * err may be NULL (the error is then dropped). */
int lvd_error_set(struct lvd_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like lvd_error_set with ": strerror(errno)" appended (errno read on entry). */
int lvd_error_errno(struct lvd_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepends printf-formatted context to an existing message ("file.jsonl:17: " +
 * msg); keeps the code; returns it. */
int lvd_error_prefix(struct lvd_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Resets to LVD_OK with an empty message. */
void lvd_error_clear(struct lvd_error *err);

/* Short name of a code ("format error"), never NULL. */
const char *lvd_err_name(int code);

/* Aborts the process with file:line and the message. Used by LVD_ASSERT. */
void lvd_panic(const char *file, int line, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 3, 4)));

#define LVD_ASSERT(cond) \
	do { if (!(cond)) lvd_panic(__FILE__, __LINE__, "assertion failed: %s", #cond); } while (0)
#define LVD_ASSERTF(cond, ...) \
	do { if (!(cond)) lvd_panic(__FILE__, __LINE__, __VA_ARGS__); } while (0)

#ifdef __cplusplus
}
#endif
#endif
