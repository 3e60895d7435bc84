/* File helpers: full I/O, atomic writes, mkdir -p, bounded line reading. */
#include "io/fileutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/fault.h"

int lvd_write_full(int fd, const void *buf, size_t len, const char *path, struct lvd_error *err)
{
	const char *p = buf;
	while (len) {
		ssize_t n = lvd_io_write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return lvd_error_errno(err, LVD_ERR_IO, "cannot write '%s'", path);
		p += n;
		len -= (size_t)n;
	}
	return LVD_OK;
}

int lvd_pread_full(int fd, void *buf, size_t len, uint64_t off, const char *path,
		   struct lvd_error *err)
{
	char *p = buf;
	while (len) {
		if (off > (uint64_t)INT64_MAX)
			return lvd_error_set(err, LVD_ERR_FORMAT, "%s: offset %llu out of range",
					     path, (unsigned long long)off);
		ssize_t n = lvd_io_pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return lvd_error_errno(err, LVD_ERR_IO, "cannot read '%s'", path);
		if (n == 0)
			return lvd_error_set(err, LVD_ERR_FORMAT, "%s: unexpected end of file at byte %llu",
					     path, (unsigned long long)off);
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return LVD_OK;
}

void lvd_format_size(uint64_t b, char *buf, size_t size)
{
	static const char *units[] = { "KiB", "MiB", "GiB", "TiB" };
	if (b < 1024) {
		snprintf(buf, size, "%llu bytes", (unsigned long long)b);
		return;
	}
	double v = (double)b;
	int u = -1;
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	if (v == (double)(uint64_t)v)
		snprintf(buf, size, "%llu %s", (unsigned long long)v, units[u]);
	else
		snprintf(buf, size, "%.1f %s", v, units[u]);
}

int lvd_path_is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int lvd_path_is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

void lvd_dir_remove_flat(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			size_t n = strlen(dir) + strlen(e->d_name) + 2;
			char *p = malloc(n);
			if (!p)
				continue;
			snprintf(p, n, "%s/%s", dir, e->d_name);
			unlink(p);
			free(p);
		}
		closedir(d);
	}
	rmdir(dir);
}

int lvd_file_read_all(const char *path, size_t max_len, char **out, size_t *out_len,
		      struct lvd_error *err)
{
	*out = NULL;
	*out_len = 0;
	int is_stdin = strcmp(path, "-") == 0;
	int fd = is_stdin ? 0 : lvd_io_open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", path);
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap + 1);
	int rc = LVD_OK;
	if (!buf) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
		goto out;
	}
	for (;;) {
		if (len == cap) {
			if (cap > max_len) {
				char s[32];
				lvd_format_size(max_len, s, sizeof s);
				rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: file larger than %s", path, s);
				goto out;
			}
			size_t ncap;
			char *nbuf = NULL;
			if (lvd_size_mul(&ncap, cap, 2) == 0 && ncap < SIZE_MAX)
				nbuf = realloc(buf, ncap + 1);
			if (!nbuf) {
				rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
				goto out;
			}
			buf = nbuf;
			cap = ncap;
		}
		ssize_t n = lvd_io_read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = lvd_error_errno(err, LVD_ERR_IO, "cannot read '%s'", path);
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max_len) {
		char s[32];
		lvd_format_size(max_len, s, sizeof s);
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: file larger than %s", path, s);
		goto out;
	}
	buf[len] = 0;
	*out = buf;
	*out_len = len;
	buf = NULL;
out:
	free(buf);
	if (!is_stdin)
		close(fd);
	return rc;
}

static const char *file_kind(mode_t m)
{
	return S_ISFIFO(m) ? "a FIFO or pipe" : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
	       : S_ISDIR(m) ? "a directory" : S_ISSOCK(m) ? "a socket" : "not a plain file";
}

int lvd_file_open_regular(const char *path, uint64_t max_size, int *fdp, uint64_t *size,
			  struct lvd_error *err)
{
	*fdp = -1;
	*size = 0;
	/* O_NONBLOCK: opening a FIFO without a writer must not hang */
	int fd = lvd_io_open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", path);
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int rc = lvd_error_errno(err, LVD_ERR_IO, "cannot stat '%s'", path);
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: not a regular file (%s)", path, file_kind(st.st_mode));
	}
	if ((uint64_t)st.st_size > max_size) {
		char s[32];
		close(fd);
		lvd_format_size(max_size, s, sizeof s);
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: file larger than %s", path, s);
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	*fdp = fd;
	*size = (uint64_t)st.st_size;
	return LVD_OK;
}

int lvd_file_read_regular(const char *path, uint64_t max_size, char **out, size_t *out_len,
			  struct lvd_error *err)
{
	*out = NULL;
	*out_len = 0;
	int fd;
	uint64_t size;
	int rc = lvd_file_open_regular(path, max_size, &fd, &size, err);
	if (rc)
		return rc;
	char *buf = size < SIZE_MAX ? malloc((size_t)size + 1) : NULL;
	if (!buf)
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory reading the file", path);
	else
		rc = lvd_pread_full(fd, buf, (size_t)size, 0, path, err);
	if (!rc) {
		char extra;
		ssize_t n;
		while ((n = lvd_io_pread(fd, &extra, 1, (off_t)size)) < 0 && errno == EINTR)
			;
		if (n != 0)
			rc = n < 0 ? lvd_error_errno(err, LVD_ERR_IO, "cannot read '%s'", path)
				   : lvd_error_set(err, LVD_ERR_IO, "%s: the file grew while being read", path);
	}
	close(fd);
	if (rc) {
		if (rc == LVD_ERR_FORMAT) /* shorter than its size: truncated while read */
			rc = lvd_error_set(err, LVD_ERR_IO, "%s: the file shrank while being read", path);
		free(buf);
		return rc;
	}
	buf[size] = 0;
	*out = buf;
	*out_len = (size_t)size;
	return LVD_OK;
}

int lvd_input_spool(const char *path, uint64_t max_size, size_t max_line, char **out,
		    struct lvd_error *err)
{
	*out = NULL;
	int is_stdin = strcmp(path, "-") == 0;
	struct stat st;
	if (!is_stdin && stat(path, &st) != 0)
		return lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", path);
	if (!is_stdin && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
		if (!(*out = lvd_strdup(path)))
			return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
		return LVD_OK;
	}
	int in = is_stdin ? 0 : lvd_io_open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", path);
	const char *name = is_stdin ? "(stdin)" : path;
	int mfd = memfd_create("lvd-input", MFD_CLOEXEC);
	char *buf = malloc(1 << 16);
	int rc = LVD_OK;
	if (mfd < 0)
		rc = lvd_error_errno(err, LVD_ERR_IO, "%s: cannot create an in-memory copy", name);
	else if (!buf)
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", name);
	uint64_t total = 0, line = 0, lineno = 1;
	while (!rc) {
		ssize_t n = lvd_io_read(in, buf, 1 << 16);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = lvd_error_errno(err, LVD_ERR_IO, "cannot read '%s'", name);
			break;
		}
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				line = 0;
				lineno++;
			} else if (++line > max_line) {
				char s[32];
				lvd_format_size(max_line, s, sizeof s);
				rc = lvd_error_set(err, LVD_ERR_INVALID, "%s:%llu: line longer than %s", name,
						   (unsigned long long)lineno, s);
				break;
			}
		}
		total += (uint64_t)n;
		if (!rc && total > max_size) {
			char s[32];
			lvd_format_size(max_size, s, sizeof s);
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: input larger than %s", name, s);
		}
		if (!rc)
			rc = lvd_write_full(mfd, buf, (size_t)n, name, err);
	}
	free(buf);
	if (!is_stdin)
		close(in);
	if (rc) {
		if (mfd >= 0)
			close(mfd);
		return rc;
	}
	char p[64];
	snprintf(p, sizeof p, "/proc/self/fd/%d", mfd);
	if (!(*out = lvd_strdup(p))) {
		close(mfd);
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", name);
	}
	return LVD_OK; /* mfd stays open: the copy lives until exit */
}

/* Folders this process has locked (a second flock on a new descriptor of the same file
 * would conflict with our own lock), with the pid that took it (a forked child is
 * another process). Set from the main thread only. */
static char *g_locked[16];
static pid_t g_locked_pid[16];

int lvd_dir_lock(const char *dir, struct lvd_error *err)
{
	return lvd_dir_lock_as(dir, ".lock", err);
}

int lvd_dir_lock_as(const char *dir, const char *name, struct lvd_error *err)
{
	char path[4096];
	size_t nl = 0;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	for (; nl < sizeof g_locked / sizeof *g_locked && g_locked[nl]; nl++)
		if (g_locked_pid[nl] == getpid() && !strcmp(g_locked[nl], path))
			return LVD_OK;
	int fd = lvd_io_open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0)
		return lvd_error_errno(err, LVD_ERR_IO, "cannot create the lock file '%s'", path);
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		char who[256] = "";
		ssize_t n = lvd_io_pread(fd, who, sizeof who - 1, 0);
		close(fd);
		if (e != EWOULDBLOCK) {
			errno = e;
			return lvd_error_errno(err, LVD_ERR_IO, "cannot lock '%s'", path);
		}
		who[n > 0 ? n : 0] = 0;
		who[strcspn(who, "\n")] = 0;
		return lvd_error_set(err, LVD_ERR_INVALID, "%s is in use by %s (lock file %s)", dir,
				     who[0] ? who : "another process", path);
	}
	char host[128] = "?", line[256];
	if (gethostname(host, sizeof host - 1) != 0)
		snprintf(host, sizeof host, "?");
	host[sizeof host - 1] = 0;
	int n = snprintf(line, sizeof line, "pid %ld host %s\n", (long)getpid(), host);
	if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n) {
		int rc = lvd_error_errno(err, LVD_ERR_IO, "cannot write the lock file '%s'", path);
		close(fd);
		return rc;
	}
	if (nl < sizeof g_locked / sizeof *g_locked && (g_locked[nl] = lvd_strdup(path)))
		g_locked_pid[nl] = getpid();
	return LVD_OK; /* fd stays open: the lock lives until exit */
}

int lvd_mkdir_p(const char *path, struct lvd_error *err)
{
	if (!*path)
		return lvd_error_set(err, LVD_ERR_INVALID, "cannot create directory '': empty path");
	char *p = lvd_strdup(path);
	if (!p)
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
	int rc = LVD_OK;
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = 0;
	for (char *s = p + 1; ; s++) {
		int last = *s == 0;
		if (*s == '/' || last) {
			char c = *s;
			*s = 0;
			if (mkdir(p, 0777) != 0 && errno != EEXIST) {
				rc = lvd_error_errno(err, LVD_ERR_IO, "cannot create directory '%s'", p);
				break;
			}
			*s = c;
		}
		if (last)
			break;
	}
	if (rc == LVD_OK) {
		struct stat st;
		if (stat(p, &st) != 0)
			rc = lvd_error_errno(err, LVD_ERR_IO, "cannot create directory '%s'", p);
		else if (!S_ISDIR(st.st_mode))
			rc = lvd_error_set(err, LVD_ERR_IO, "cannot create directory '%s': a file of that name exists", p);
	}
	free(p);
	return rc;
}

int lvd_fsync_parent(const char *path, struct lvd_error *err)
{
	char *copy = lvd_strdup(path);
	if (!copy)
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
	const char *dir = dirname(copy);
	int fd = lvd_io_open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = LVD_OK;
	if (fd < 0)
		rc = lvd_error_errno(err, LVD_ERR_IO, "cannot open directory '%s'", dir);
	else {
		/* some filesystems refuse fsync on directories (EINVAL): not an error */
		if (lvd_io_fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
			rc = lvd_error_errno(err, LVD_ERR_IO, "cannot sync directory '%s'", dir);
		close(fd);
	}
	free(copy);
	return rc;
}

static void afile_free(struct lvd_afile *af)
{
	free(af->path);
	free(af->tmp_path);
	af->path = af->tmp_path = NULL;
	af->fd = -1;
}

int lvd_afile_open(struct lvd_afile *af, const char *path, struct lvd_error *err)
{
	af->fd = -1;
	af->path = lvd_strdup(path);
	size_t n = strlen(path);
	af->tmp_path = malloc(n + 5);
	if (!af->path || !af->tmp_path) {
		afile_free(af);
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
	}
	memcpy(af->tmp_path, path, n);
	memcpy(af->tmp_path + n, ".tmp", 5);
	af->fd = lvd_io_open(af->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (af->fd < 0) {
		int rc = lvd_error_errno(err, LVD_ERR_IO, "cannot create '%s'", af->tmp_path);
		afile_free(af);
		return rc;
	}
	return LVD_OK;
}

int lvd_afile_write(struct lvd_afile *af, const void *buf, size_t len, struct lvd_error *err)
{
	LVD_ASSERT(af->fd >= 0);
	return lvd_write_full(af->fd, buf, len, af->tmp_path, err);
}

int lvd_afile_commit(struct lvd_afile *af, struct lvd_error *err)
{
	LVD_ASSERT(af->fd >= 0);
	int rc = LVD_OK;
	if (lvd_io_fsync(af->fd) != 0)
		rc = lvd_error_errno(err, LVD_ERR_IO, "cannot sync '%s'", af->tmp_path);
	if (close(af->fd) != 0 && rc == LVD_OK)
		rc = lvd_error_errno(err, LVD_ERR_IO, "cannot close '%s'", af->tmp_path);
	af->fd = -1;
	if (rc == LVD_OK && lvd_io_rename(af->tmp_path, af->path) != 0)
		rc = lvd_error_errno(err, LVD_ERR_IO, "cannot rename '%s' to '%s'", af->tmp_path, af->path);
	if (rc == LVD_OK)
		rc = lvd_fsync_parent(af->path, err);
	else
		unlink(af->tmp_path);
	afile_free(af);
	return rc;
}

void lvd_afile_abort(struct lvd_afile *af)
{
	if (af->fd >= 0)
		close(af->fd);
	if (af->tmp_path)
		unlink(af->tmp_path);
	afile_free(af);
}

int lvd_file_write_atomic(const char *path, const void *data, size_t len, struct lvd_error *err)
{
	struct lvd_afile af;
	int rc = lvd_afile_open(&af, path, err);
	if (rc)
		return rc;
	if ((rc = lvd_afile_write(&af, data, len, err))) {
		lvd_afile_abort(&af);
		return rc;
	}
	return lvd_afile_commit(&af, err);
}

/* --- bounded line reader ------------------------------------------------------ */

struct lvd_lines {
	char *path;
	int fd, is_stdin, eof;
	size_t max_line;
	char *buf;              /* read buffer */
	size_t cap, start, end; /* pending bytes are buf[start..end) */
	char *line;             /* assembled line when it spans refills */
	size_t line_cap;
	uint64_t lineno;
};

enum { LINES_CHUNK = 1 << 16 };

int lvd_lines_open(struct lvd_lines **out, const char *path, size_t max_line,
		   struct lvd_error *err)
{
	*out = NULL;
	struct lvd_lines *lr = calloc(1, sizeof *lr);
	if (!lr || !(lr->path = lvd_strdup(path)) || !(lr->buf = malloc(LINES_CHUNK))) {
		if (lr)
			free(lr->path);
		free(lr);
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", path);
	}
	lr->cap = LINES_CHUNK;
	lr->max_line = max_line;
	lr->is_stdin = strcmp(path, "-") == 0;
	lr->fd = lr->is_stdin ? 0 : lvd_io_open(path, O_RDONLY | O_CLOEXEC);
	if (lr->fd < 0) {
		int rc = lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", path);
		lr->fd = -1;
		lvd_lines_close(lr);
		return rc;
	}
	*out = lr;
	return LVD_OK;
}

/* Refills buf (only when start == end). Returns bytes read (0 at EOF) or -1. */
static ssize_t lines_fill(struct lvd_lines *lr, struct lvd_error *err)
{
	for (;;) {
		ssize_t n = lvd_io_read(lr->fd, lr->buf, lr->cap);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			lvd_error_errno(err, LVD_ERR_IO, "cannot read '%s'", lr->path);
			return -1;
		}
		lr->start = 0;
		lr->end = (size_t)n;
		if (n == 0)
			lr->eof = 1;
		return n;
	}
}

int lvd_lines_next(struct lvd_lines *lr, const char **line, size_t *len, uint64_t *lineno,
		   struct lvd_error *err)
{
	size_t have = 0;      /* bytes of the current line gathered in lr->line */
	int too_long = 0;
	int any = 0;          /* saw at least one byte (or the newline) of a line */
	for (;;) {
		if (lr->start == lr->end) {
			if (lr->eof)
				break;
			ssize_t n = lines_fill(lr, err);
			if (n < 0)
				return LVD_ERR_IO;
			if (n == 0)
				break;
		}
		char *s = lr->buf + lr->start;
		size_t avail = lr->end - lr->start;
		char *nl = memchr(s, '\n', avail);
		size_t take = nl ? (size_t)(nl - s) : avail;
		any = 1;
		if (!too_long) {
			if (have + take > lr->max_line) {
				too_long = 1;
			} else {
				if (have + take + 1 > lr->line_cap) {
					size_t ncap = lr->line_cap ? lr->line_cap : 256;
					while (ncap < have + take + 1)
						ncap *= 2;
					char *nl2 = realloc(lr->line, ncap);
					if (!nl2)
						return lvd_error_set(err, LVD_ERR_NOMEM, "%s:%llu: out of memory",
								     lr->path, (unsigned long long)lr->lineno + 1);
					lr->line = nl2;
					lr->line_cap = ncap;
				}
				memcpy(lr->line + have, s, take);
				have += take;
			}
		}
		lr->start += take + (nl ? 1 : 0);
		if (nl)
			goto got_line;
	}
	if (!any)
		return LVD_LINES_EOF;
got_line:
	lr->lineno++;
	*lineno = lr->lineno;
	if (too_long) {
		char s[32];
		lvd_format_size(lr->max_line, s, sizeof s);
		return lvd_error_set(err, LVD_ERR_INVALID, "%s:%llu: line longer than %s",
				     lr->path, (unsigned long long)lr->lineno, s);
	}
	if (!lr->line) {
		lr->line = malloc(1);
		if (!lr->line)
			return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", lr->path);
		lr->line_cap = 1;
	}
	lr->line[have] = 0;
	*line = lr->line;
	*len = have;
	return LVD_OK;
}

const char *lvd_lines_path(const struct lvd_lines *lr)
{
	return lr->path;
}

void lvd_lines_close(struct lvd_lines *lr)
{
	if (!lr)
		return;
	if (lr->fd >= 0 && !lr->is_stdin)
		close(lr->fd);
	free(lr->path);
	free(lr->buf);
	free(lr->line);
	free(lr);
}

size_t lvd_utf8_check(const void *vbuf, size_t len)
{
	const unsigned char *s = vbuf;
	size_t i = 0;
	while (i < len) {
		unsigned c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
		if (c >= 0xC2 && c <= 0xDF)
			n = 2;
		else if (c >= 0xE0 && c <= 0xEF) {
			n = 3;
			if (c == 0xE0) lo = 0xA0;      /* overlong */
			if (c == 0xED) hi = 0x9F;      /* surrogates */
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 4;
			if (c == 0xF0) lo = 0x90;      /* overlong */
			if (c == 0xF4) hi = 0x8F;      /* > U+10FFFF */
		} else
			return i;
		if (len - i < n || s[i + 1] < lo || s[i + 1] > hi)
			return i;
		for (size_t k = 2; k < n; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return i;
		i += n;
	}
	return len;
}
