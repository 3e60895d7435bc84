/* Hostile inputs of issue #17 ("Defects found by trying") at the library level:
 * non-regular files refused without blocking (FIFO, /dev/zero, folders) where a size is
 * needed, inputs read once from pipes (lvd_input_spool), the output-folder lock naming
 * its holder, non-finite map values, inconsistent .lvdp records and index ids. Every
 * blocking case runs under alarm() so a regression fails instead of hanging. */
#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "io/container.h"
#include "io/fileutil.h"
#include "io/image.h"
#include "lavender/mapsrec.h"
#include "lavender/packrec.h"

static char g_dir[64];

static const char *tmp_path(const char *name)
{
	static char buf[4][256];
	static int k;
	k = (k + 1) % 4;
	if (!g_dir[0]) {
		snprintf(g_dir, sizeof g_dir, "/tmp/lvd_test_rel_XXXXXX");
		LVD_ASSERT(mkdtemp(g_dir) != NULL);
	}
	snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
	return buf[k];
}

static void write_file(const char *path, const void *data, size_t len)
{
	struct lvd_error e = {0};
	LVD_ASSERT(lvd_file_write_atomic(path, data, len, &e) == 0);
}

static void test_non_regular_refused(void)
{
	struct lvd_error e = {0};
	const char *fifo = tmp_path("fifo.png");
	unlink(fifo);
	REQUIRE(mkfifo(fifo, 0600) == 0);
	alarm(20); /* a blocking open or an endless read fails the test instead of hanging */
	int fd;
	uint64_t size;
	CHECK(lvd_file_open_regular(fifo, 1 << 20, &fd, &size, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "not a regular file (a FIFO or pipe)");
	CHECK(lvd_file_open_regular("/dev/zero", 1 << 20, &fd, &size, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "/dev/zero: not a regular file (a character device)");
	CHECK(lvd_file_open_regular(g_dir, 1 << 20, &fd, &size, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "a directory");
	struct lvd_image img;
	CHECK(lvd_image_load(&img, fifo, LVD_ALPHA_BLACK, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "fifo.png: not a regular file");
	CHECK(lvd_image_load(&img, "/dev/zero", LVD_ALPHA_BLACK, &e) == LVD_ERR_INVALID);
	struct lvd_rec_reader *rr = NULL; /* shards: same rule (inspect, resume, lvd-pack --maps) */
	CHECK(lvd_rec_open(&rr, fifo, NULL, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "not a regular file");
	const char *big = tmp_path("big.bin");
	write_file(big, "0123456789", 10);
	CHECK(lvd_file_open_regular(big, 9, &fd, &size, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "file larger than 9 bytes");
	char *buf = NULL;
	size_t len = 0;
	CHECK(lvd_file_read_regular(big, 10, &buf, &len, &e) == 0);
	CHECK(len == 10 && buf && !memcmp(buf, "0123456789", 11));
	free(buf);
	alarm(0);
	unlink(fifo);
	unlink(big);
}

/* Reads path (after lvd_input_spool) twice in full: the copy can be reopened. */
static void check_reread(const char *path, const char *want)
{
	struct lvd_error e = {0};
	for (int k = 0; k < 2; k++) {
		char *buf = NULL;
		size_t len = 0;
		CHECK(lvd_file_read_all(path, 1 << 20, &buf, &len, &e) == 0);
		CHECK(buf && len == strlen(want) && !memcmp(buf, want, len));
		free(buf);
	}
}

static void test_input_spool(void)
{
	struct lvd_error e = {0};
	const char *text = "{\"id\": \"a\"}\n{\"id\": \"b\"}\n";
	alarm(20);
	/* a regular file stays itself */
	const char *reg = tmp_path("m.jsonl");
	write_file(reg, text, strlen(text));
	char *p = NULL;
	CHECK(lvd_input_spool(reg, 1 << 20, 1 << 10, &p, &e) == 0);
	CHECK(p && !strcmp(p, reg));
	free(p);
	/* stdin on a pipe ("-"): copied once, readable twice */
	int pfd[2];
	REQUIRE(pipe(pfd) == 0);
	REQUIRE(write(pfd[1], text, strlen(text)) == (ssize_t)strlen(text));
	close(pfd[1]);
	int saved = dup(0);
	dup2(pfd[0], 0);
	close(pfd[0]);
	CHECK(lvd_input_spool("-", 1 << 20, 1 << 10, &p, &e) == 0);
	dup2(saved, 0);
	close(saved);
	CHECK(p && strncmp(p, "/proc/self/fd/", 14) == 0);
	if (p)
		check_reread(p, text);
	free(p);
	/* a FIFO with a writer (what `<(...)` gives) */
	const char *fifo = tmp_path("m.fifo");
	unlink(fifo);
	REQUIRE(mkfifo(fifo, 0600) == 0);
	pid_t kid = fork();
	REQUIRE(kid >= 0);
	if (kid == 0) {
		int fd = open(fifo, O_WRONLY);
		ssize_t n = fd >= 0 ? write(fd, text, strlen(text)) : -1;
		_exit(n == (ssize_t)strlen(text) ? 0 : 1);
	}
	CHECK(lvd_input_spool(fifo, 1 << 20, 1 << 10, &p, &e) == 0);
	int st = 0;
	waitpid(kid, &st, 0);
	CHECK(p && strncmp(p, "/proc/self/fd/", 14) == 0);
	if (p)
		check_reread(p, text);
	free(p);
	unlink(fifo);
	/* /dev/zero: no newline within the line cap -> a quick error, not a hang */
	CHECK(lvd_input_spool("/dev/zero", (uint64_t)1 << 30, 1 << 16, &p, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "/dev/zero:1: line longer than 64 KiB");
	/* the size cap */
	REQUIRE(pipe(pfd) == 0);
	REQUIRE(write(pfd[1], text, strlen(text)) == (ssize_t)strlen(text));
	close(pfd[1]);
	saved = dup(0);
	dup2(pfd[0], 0);
	close(pfd[0]);
	CHECK(lvd_input_spool("-", 10, 1 << 10, &p, &e) == LVD_ERR_INVALID);
	dup2(saved, 0);
	close(saved);
	CHECK_CONTAINS(e.msg, "(stdin): input larger than 10 bytes");
	alarm(0);
}

static void test_dir_lock(void)
{
	struct lvd_error e = {0};
	const char *dir = tmp_path("out");
	REQUIRE(lvd_mkdir_p(dir, &e) == 0);
	CHECK(lvd_dir_lock(dir, &e) == 0);
	CHECK(lvd_dir_lock(dir, &e) == 0); /* again in the same process: fine */
	char want[64];
	snprintf(want, sizeof want, "in use by pid %ld host ", (long)getpid());
	int pfd[2];
	REQUIRE(pipe(pfd) == 0);
	pid_t kid = fork();
	REQUIRE(kid >= 0);
	if (kid == 0) { /* another process: refused, told who holds it */
		struct lvd_error ke = {0};
		int rc = lvd_dir_lock(dir, &ke);
		ssize_t n = write(pfd[1], ke.msg, strlen(ke.msg) + 1);
		_exit(rc == LVD_ERR_INVALID && n > 0 ? 0 : 1);
	}
	close(pfd[1]);
	char msg[LVD_ERROR_MSG_MAX] = "";
	ssize_t n = read(pfd[0], msg, sizeof msg - 1);
	msg[n > 0 ? n : 0] = 0;
	close(pfd[0]);
	int st = 0;
	waitpid(kid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_CONTAINS(msg, want);
	CHECK_CONTAINS(msg, "/out/.lock)");
}

static int read_seed(const char *rel, char **buf, size_t *len)
{
	struct lvd_error e = {0};
	return lvd_file_read_all(lvd_test_path(rel), 1 << 24, buf, len, &e);
}

static void test_maps_non_finite(void)
{
	char *buf = NULL;
	size_t len = 0;
	if (read_seed("tests/fuzz/corpus/mapsrec/rec-0", &buf, &len))
		SKIP("tests/fuzz/corpus/mapsrec/rec-0 not readable");
	struct lvd_error e = {0};
	struct lvd_mapsrec r;
	REQUIRE(lvd_mapsrec_decode(&r, buf, len, "maps/attn-00000.lvdm: record 0", &e) == 0);
	lvd_mapsrec_free(&r);
	for (int k = 0; k < 2; k++) {
		uint16_t bad = k ? 0x7e00 : 0x7c00; /* NaN, +Inf in the last map value */
		buf[len - 2] = (char)(bad & 0xff);
		buf[len - 1] = (char)(bad >> 8);
		CHECK(lvd_mapsrec_decode(&r, buf, len, "maps/attn-00000.lvdm: record 0", &e) == LVD_ERR_FORMAT);
		CHECK_CONTAINS(e.msg, "maps/attn-00000.lvdm: record 0: map of token ");
		CHECK_CONTAINS(e.msg, "value not finite");
		lvd_mapsrec_free(&r);
	}
	free(buf);
}

static void test_pack_inconsistent(void)
{
	char *buf = NULL;
	size_t len = 0;
	if (read_seed("tests/fuzz/corpus/packrec/flags-0", &buf, &len))
		SKIP("tests/fuzz/corpus/packrec/flags-0 not readable");
	struct lvd_error e = {0};
	struct lvd_packrec r;
	REQUIRE(lvd_packrec_decode(&r, buf, len, "t", &e) == 0);
	uint8_t *out = NULL;
	size_t olen = 0;
	REQUIRE(lvd_packrec_encode(&r, &out, &olen, &e) == 0);
	free(out);
	struct lvd_packrec keep = r;
	/* aspect id that does not name the tiling */
	r.aspect_id = r.tiles_h * r.tiles_w == 1 ? 5 : 1;
	CHECK(lvd_packrec_encode(&r, &out, &olen, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "does not name");
	r = keep;
	r.img_w = 327840;
	CHECK(lvd_packrec_encode(&r, &out, &olen, &e) == LVD_ERR_INVALID);
	CHECK_CONTAINS(e.msg, "out of range");
	r = keep;
	if (r.image_pos != LVD_PACKREC_NO_IMAGE) {
		int32_t lab = r.labels[r.image_pos];
		r.labels[r.image_pos] = r.tokens[r.image_pos];
		CHECK(lvd_packrec_encode(&r, &out, &olen, &e) == LVD_ERR_INVALID);
		CHECK_CONTAINS(e.msg, "is not <|image|>");
		r.labels[r.image_pos] = lab;
	}
	if (r.W) {
		size_t cells = (size_t)r.gh * r.gw, c = 0;
		while (c < cells && !r.mask[c])
			c++;
		REQUIRE(c < cells);
		uint16_t v = r.targets[c];
		r.targets[c] = 0xc000; /* -2 */
		CHECK(lvd_packrec_encode(&r, &out, &olen, &e) == LVD_ERR_INVALID);
		CHECK_CONTAINS(e.msg, "not in [0, 1]");
		r.targets[c] = 0x3c01; /* just above 1 */
		CHECK(lvd_packrec_encode(&r, &out, &olen, &e) == LVD_ERR_INVALID);
		r.targets[c] = v;
	} else {
		CHECKF(0, "seed flags-0 has no words");
	}
	/* the decoder applies the same rules: patch img_w (offset 40) in the bytes */
	unsigned char *b = (unsigned char *)buf;
	uint32_t big = 327840;
	memcpy(b + 40, &big, 4);
	struct lvd_packrec d;
	CHECK(lvd_packrec_decode(&d, buf, len, "pack/train-00000.lvdp: record 0", &e) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(e.msg, "pack/train-00000.lvdp: record 0: image 327840x");
	lvd_packrec_free(&d);
	r = keep;
	lvd_packrec_free(&r);
	free(buf);
}

/* A shard whose index names a record "other" while its payload says "rec-0"'s id. */
static void test_index_id_vs_payload(void)
{
	char *buf = NULL;
	size_t len = 0;
	if (read_seed("tests/fuzz/corpus/mapsrec/rec-0", &buf, &len))
		SKIP("tests/fuzz/corpus/mapsrec/rec-0 not readable");
	struct lvd_error e = {0};
	const char *path = tmp_path("attn-00000.lvdm");
	struct lvd_rec_writer *w = NULL;
	struct lvd_rec_writer_opts wo = {1};
	REQUIRE(lvd_rec_writer_open(&w, path, LVD_REC_KIND_MAPS, "{}", &wo, &e) == 0);
	REQUIRE(lvd_rec_writer_append(w, "other", buf, len, &e) == 0);
	REQUIRE(lvd_rec_writer_close(w, &e) == 0);
	struct lvd_rec_reader *r = NULL;
	REQUIRE(lvd_rec_open(&r, path, LVD_REC_KIND_MAPS, &e) == 0);
	void *pl = NULL;
	size_t pn = 0;
	struct lvd_mapsrec m;
	REQUIRE(lvd_rec_read(r, 0, &pl, &pn, &e) == 0);
	REQUIRE(lvd_mapsrec_decode(&m, pl, pn, "attn-00000.lvdm: record 0", &e) == 0);
	CHECK(lvd_rec_check_id(r, 0, m.id, "attn-00000.lvdm: record 0", &e) == LVD_ERR_FORMAT);
	CHECK_CONTAINS(e.msg, "attn-00000.lvdm: record 0: the index names the record 'other' but its payload says");
	CHECK(lvd_rec_check_id(r, 0, "other", "x", &e) == 0);
	lvd_mapsrec_free(&m);
	free(pl);
	lvd_rec_close(r);
	unlink(path);
	free(buf);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {TEST(test_non_regular_refused), TEST(test_input_spool),
						TEST(test_dir_lock), TEST(test_maps_non_finite),
						TEST(test_pack_inconsistent), TEST(test_index_id_vs_payload), {0}};
	int rc = lvd_test_main(argc, argv, tests);
	if (g_dir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", g_dir);
	}
	return rc;
}
