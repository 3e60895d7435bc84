/* lib/io/fileutil.h — small file helpers shared by the readers and writers.
 *
 * - Full reads/writes that retry on EINTR and short counts.
 * - Atomic output: write `name.tmp`, fsync, rename to `name`, fsync the directory, so a
 *   crash never leaves a half-written file under the final name (STYLE "File formats").
 * - mkdir -p, whole-file reads with a size cap, path tests.
 * - A bounded line reader (JSONL): lines of any length up to a cap, with line numbers.
 * Every function returns LVD_OK or an error code with err naming the path. */
#ifndef LVD_IO_FILEUTIL_H
#define LVD_IO_FILEUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes all len bytes to fd (LVD_ERR_IO on failure; `path` names it in err). */
int lvd_write_full(int fd, const void *buf, size_t len, const char *path, struct lvd_error *err);

/* Reads exactly len bytes at offset off. LVD_ERR_FORMAT "unexpected end of file" when
 * the file is shorter, LVD_ERR_IO on read errors. */
int lvd_pread_full(int fd, void *buf, size_t len, uint64_t off, const char *path,
		   struct lvd_error *err);

/* Reads a whole file ("-" = stdin) into a malloc'd buffer with a NUL after the last
 * byte (not counted in *len). Files larger than max_len give LVD_ERR_INVALID. Caller
 * frees *buf. */
int lvd_file_read_all(const char *path, size_t max_len, char **buf, size_t *len,
		      struct lvd_error *err);

/* Opens path for reading as a regular file of at most max_size bytes: *fd (O_CLOEXEC)
 * and *size. A FIFO, device, socket or directory is refused without blocking
 * (LVD_ERR_INVALID "PATH: not a regular file (a FIFO)"), as is a larger file
 * ("PATH: file larger than X"); LVD_ERR_IO when it cannot be opened. For inputs whose
 * size is needed up front (images, shards). */
int lvd_file_open_regular(const char *path, uint64_t max_size, int *fd, uint64_t *size,
			  struct lvd_error *err);

/* Reads a regular file (lvd_file_open_regular's rules) into a malloc'd buffer with a
 * NUL after the last byte (not counted in *len); a file that changes size while read is
 * an error. Caller frees *buf. */
int lvd_file_read_regular(const char *path, uint64_t max_size, char **buf, size_t *len,
			  struct lvd_error *err);

/* An input that tools read more than once (a manifest: hashed, counted, then read).
 * When path is "-" (stdin), a FIFO (`<(...)`, /dev/stdin on a pipe) or another
 * non-regular file, its bytes are read once into an anonymous in-memory file, at most
 * max_size bytes and no line longer than max_line bytes (so /dev/zero fails fast), and
 * *out becomes a malloc'd "/proc/self/fd/N" path of that copy that can be reopened and
 * read any number of times; for a regular file (or a directory) *out is a malloc'd
 * copy of path. Caller frees *out (the copy lives until the process exits). */
int lvd_input_spool(const char *path, uint64_t max_size, size_t max_line, char **out,
		    struct lvd_error *err);

/* Takes an exclusive lock on the output folder dir (flock on dir/lock, non-blocking)
 * for the life of the process, writing "pid PID host HOST" into the lock file. When
 * another process holds it: LVD_ERR_INVALID "DIR is in use by pid PID on host HOST
 * (lock file DIR/lock)". The lock is released when the process exits (killed
 * included); the file stays. */
int lvd_dir_lock(const char *dir, struct lvd_error *err);

/* lvd_dir_lock with the lock file dir/name (a split run's ".lock-00003-of-00008": the N
 * splits of a --shard i/N job write into one folder at once). */
int lvd_dir_lock_as(const char *dir, const char *name, struct lvd_error *err);

/* 1 when path exists and is a directory / a regular file (following symlinks); 0 otherwise
 * (including errors). */
int lvd_path_is_dir(const char *path);
int lvd_path_is_file(const char *path);

/* Removes the entries of dir that unlink removes (files, links; not sub-folders), then
 * dir itself; failures are ignored (cleanup of a tool's own temporary or replaced
 * folders). */
void lvd_dir_remove_flat(const char *dir);

/* Creates a directory and its parents (mode 0777 before umask); existing is fine. */
int lvd_mkdir_p(const char *path, struct lvd_error *err);

/* fsyncs the directory containing `path` (makes a rename durable). */
int lvd_fsync_parent(const char *path, struct lvd_error *err);

/* An output file being written atomically. */
struct lvd_afile {
	int fd;        /* open on tmp_path; -1 when closed */
	char *path;    /* final name (owned) */
	char *tmp_path;/* path + ".tmp" (owned) */
};

/* Opens path.tmp for writing (created or truncated, mode 0666 before umask). On error
 * af is left closed (fd -1, no allocations). */
int lvd_afile_open(struct lvd_afile *af, const char *path, struct lvd_error *err);
/* Appends bytes to the tmp file. */
int lvd_afile_write(struct lvd_afile *af, const void *buf, size_t len, struct lvd_error *err);
/* fsync, close, rename tmp -> path, fsync the directory; frees af's strings. On
 * failure the tmp file is removed. Either way af is closed afterwards. */
int lvd_afile_commit(struct lvd_afile *af, struct lvd_error *err);
/* Closes and removes the tmp file, frees af's strings. Safe on a closed af. */
void lvd_afile_abort(struct lvd_afile *af);

/* Writes data to path atomically (tmp + fsync + rename). */
int lvd_file_write_atomic(const char *path, const void *data, size_t len, struct lvd_error *err);

/* --- bounded line reader ------------------------------------------------------ */

struct lvd_lines;

#define LVD_LINES_EOF (-1)

/* Opens path ("-" = stdin) for line reading; lines longer than max_line bytes are
 * errors. Free with lvd_lines_close. */
int lvd_lines_open(struct lvd_lines **out, const char *path, size_t max_line,
		   struct lvd_error *err);

/* Next line without its "\n" (a trailing "\r" is kept: callers decide). *line is
 * borrowed until the next call and NUL-terminated (embedded NULs are possible; use
 * *len). *lineno is 1-based. Returns LVD_OK, LVD_LINES_EOF at end of input, or:
 *   LVD_ERR_INVALID "path:N: line longer than X" — the rest of that line is skipped
 *     and the next call continues with line N+1;
 *   LVD_ERR_IO on read errors (stop). */
int lvd_lines_next(struct lvd_lines *lr, const char **line, size_t *len, uint64_t *lineno,
		   struct lvd_error *err);

/* The path given at open ("-" for stdin); borrowed. */
const char *lvd_lines_path(const struct lvd_lines *lr);

void lvd_lines_close(struct lvd_lines *lr);

/* Returns the offset of the first byte of buf[0..len) that is not part of a valid
 * UTF-8 sequence (overlongs, surrogates and values above U+10FFFF are invalid), or len
 * when all of it is valid. */
size_t lvd_utf8_check(const void *buf, size_t len);

/* Formats a byte size for messages: "16 MiB", "1.5 KiB", "123 bytes". */
void lvd_format_size(uint64_t bytes, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
