/* Test-only fault injection (see fault.h). */
#include "core/fault.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *const OP_NAMES[LVD_FAULT_NOPS] = {"open", "read", "write", "fsync", "rename", "mmap", "alloc"};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_active;             /* LVD_FAULT parsed and valid */
static int g_count_mode;         /* LVD_FAULT=count */
static int g_op = -1;            /* the op to fail */
static uint64_t g_n;             /* its call number */
static int g_err = EIO;
static uint64_t g_calls[LVD_FAULT_NOPS];

static void print_counts(void)
{
	char line[256];
	size_t o = 0;
	o += (size_t)snprintf(line + o, sizeof line - o, "lvd: fault counts:");
	for (int i = 0; i < LVD_FAULT_NOPS && o < sizeof line; i++)
		o += (size_t)snprintf(line + o, sizeof line - o, " %s=%llu", OP_NAMES[i],
				      (unsigned long long)__atomic_load_n(&g_calls[i], __ATOMIC_RELAXED));
	fprintf(stderr, "%s\n", line);
}

static void parse_env(void)
{
	const char *s = getenv("LVD_FAULT");
	if (!s || !*s)
		return;
	if (!strcmp(s, "count")) {
		g_count_mode = g_active = 1;
		atexit(print_counts);
		return;
	}
	char op[16] = "", err[16] = "";
	unsigned long long n = 0;
	int k = sscanf(s, "%15[a-z]:%llu:%15[A-Za-z]", op, &n, err);
	for (int i = 0; i < LVD_FAULT_NOPS; i++)
		if (!strcmp(op, OP_NAMES[i]))
			g_op = i;
	if (k < 2 || g_op < 0 || n == 0) {
		fprintf(stderr, "lvd: LVD_FAULT='%s' ignored (want op:N[:err], op one of open read write "
				"fsync rename mmap alloc)\n", s);
		g_op = -1;
		return;
	}
	g_n = n;
	if (k == 3) {
		if (!strcmp(err, "EIO")) g_err = EIO;
		else if (!strcmp(err, "ENOSPC")) g_err = ENOSPC;
		else if (!strcmp(err, "EINTR")) g_err = EINTR;
		else if (!strcmp(err, "EFBIG")) g_err = EFBIG;
		else if (!strcmp(err, "short")) g_err = LVD_FAULT_SHORT;
		else {
			fprintf(stderr, "lvd: LVD_FAULT='%s' ignored: unknown error '%s'\n", s, err);
			g_op = -1;
			return;
		}
	}
	g_active = 1;
}

int lvd_fault_hit(enum lvd_fault_op op)
{
	pthread_once(&g_once, parse_env);
	if (!g_active)
		return 0;
	uint64_t k = __atomic_add_fetch(&g_calls[op], 1, __ATOMIC_RELAXED);
	if (g_count_mode || (int)op != g_op || k != g_n)
		return 0;
	int e = g_err;
	if (e == LVD_FAULT_SHORT && op != LVD_FAULT_READ && op != LVD_FAULT_WRITE)
		e = EIO;
	fprintf(stderr, "lvd: fault injected: %s #%llu (%s)\n", OP_NAMES[op], (unsigned long long)k,
		e == LVD_FAULT_SHORT ? "short" : strerror(e));
	return e;
}

int lvd_fault_alloc(void)
{
	return lvd_fault_hit(LVD_FAULT_ALLOC) != 0;
}

int lvd_io_open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	if (flags & O_CREAT) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	int e = lvd_fault_hit(LVD_FAULT_OPEN);
	if (e) {
		errno = e;
		return -1;
	}
	return open(path, flags, mode);
}

FILE *lvd_io_fopen(const char *path, const char *mode)
{
	int e = lvd_fault_hit(LVD_FAULT_OPEN);
	if (e) {
		errno = e;
		return NULL;
	}
	return fopen(path, mode);
}

/* The fault check of a read or write of *n bytes: 0 to go on (*n halved for "short"),
 * -1 with errno set to fail. */
static int xfer_fault(enum lvd_fault_op op, size_t *n)
{
	int e = lvd_fault_hit(op);
	if (e == LVD_FAULT_SHORT) {
		if (*n > 1)
			*n /= 2;
		return 0;
	}
	if (e) {
		errno = e;
		return -1;
	}
	return 0;
}

ssize_t lvd_io_read(int fd, void *buf, size_t n)
{
	return xfer_fault(LVD_FAULT_READ, &n) ? -1 : read(fd, buf, n);
}

ssize_t lvd_io_pread(int fd, void *buf, size_t n, off_t off)
{
	return xfer_fault(LVD_FAULT_READ, &n) ? -1 : pread(fd, buf, n, off);
}

ssize_t lvd_io_write(int fd, const void *buf, size_t n)
{
	return xfer_fault(LVD_FAULT_WRITE, &n) ? -1 : write(fd, buf, n);
}

int lvd_io_fsync(int fd)
{
	int e = lvd_fault_hit(LVD_FAULT_FSYNC);
	if (e) {
		errno = e;
		return -1;
	}
	return fsync(fd);
}

int lvd_io_rename(const char *from, const char *to)
{
	int e = lvd_fault_hit(LVD_FAULT_RENAME);
	if (e) {
		errno = e;
		return -1;
	}
	return rename(from, to);
}

void *lvd_io_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	int e = lvd_fault_hit(LVD_FAULT_MMAP);
	if (e) {
		errno = e;
		return MAP_FAILED;
	}
	return mmap(addr, len, prot, flags, fd, off);
}
