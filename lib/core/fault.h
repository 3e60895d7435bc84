/* lib/core/fault.h — test-only fault injection in the one I/O layer (issue #17).
 *
 * Compiled in always, inert unless the environment sets LVD_FAULT when the first I/O
 * call is made:
 *   LVD_FAULT=op:N[:err]   the N-th (1-based) call of op in this process fails
 *     op   open | read | write | fsync | rename | mmap | alloc
 *     err  EIO (default) | ENOSPC | EINTR | EFBIG | short
 *          "short" makes that write or read transfer only half of its bytes (the
 *          callers' loops must finish the rest); EINTR must be retried by the callers.
 *   LVD_FAULT=count        counts the calls and prints them at exit on stderr:
 *                          "lvd: fault counts: open=12 read=40 ..."
 * Every injection prints "lvd: fault injected: OP #N (ERR)" on stderr, so a test knows
 * that the N-th call happened. The counters are shared by all threads (atomic); with
 * several threads the call that gets number N may vary between runs.
 *
 * The wrappers below behave exactly like the system calls (errno set on failure) and
 * are used by lib/io, lib/core/sha256, tools/common and the tools' own writers.
 * lvd_fault_alloc() is consulted by lib/core/alloc's checked allocators. */
#ifndef LVD_CORE_FAULT_H
#define LVD_CORE_FAULT_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

enum lvd_fault_op {
	LVD_FAULT_OPEN, LVD_FAULT_READ, LVD_FAULT_WRITE, LVD_FAULT_FSYNC, LVD_FAULT_RENAME,
	LVD_FAULT_MMAP, LVD_FAULT_ALLOC, LVD_FAULT_NOPS
};

#define LVD_FAULT_SHORT (-1)

/* 0 to go on; else the errno to fail with, or LVD_FAULT_SHORT (read/write only). */
int lvd_fault_hit(enum lvd_fault_op op);

/* 1 when an allocation must fail now (LVD_FAULT=alloc:N), else 0. */
int lvd_fault_alloc(void);

int lvd_io_open(const char *path, int flags, ...);
FILE *lvd_io_fopen(const char *path, const char *mode);
ssize_t lvd_io_read(int fd, void *buf, size_t n);
ssize_t lvd_io_pread(int fd, void *buf, size_t n, off_t off);
ssize_t lvd_io_write(int fd, const void *buf, size_t n);
int lvd_io_fsync(int fd);
int lvd_io_rename(const char *from, const char *to);
void *lvd_io_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

#ifdef __cplusplus
}
#endif
#endif
