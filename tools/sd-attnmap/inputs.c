/* sd-attnmap run: manifest samples and provenance hashes (runctx.h). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/sha256.h"
#include "io/fileutil.h"
#include "io/manifest.h"
#include "common/shardrun.h"
#include "runctx.h"

int am_text_field_parse(const char *name)
{
	int f;
	struct lvd_error err = {0};
	return lvd_text_field_parse(name, &f, &err) ? -1 : f;
}

const char *am_text_field_name(int field)
{
	switch (field) {
	case LVD_TEXT_CAPTION: return "caption";
	case LVD_TEXT_ASSISTANT: return "assistant";
	case LVD_TEXT_ALL: return "all";
	default: return "auto";
	}
}

void am_input_free(struct am_input *in)
{
	free(in->id);
	free(in->image);
	free(in->image_path);
	free(in->text);
	am_text_free(&in->tok);
	memset(in, 0, sizeof *in);
}

struct am_manifest {
	struct lvd_manifest *m;
	struct lvd_sample s;
	char *root;
	int field;
	uint64_t count, next_index;
	int failed;     /* a read error ended the manifest early: the run must fail */
};

static char *dir_of(const char *path)
{
	const char *sl = strrchr(path, '/');
	if (!sl)
		return lvd_strdup(".");
	size_t n = (size_t)(sl - path);
	char *d = malloc(n + 2);
	if (!d)
		return NULL;
	memcpy(d, path, n ? n : 1);
	d[n ? n : 1] = 0;
	return d;
}

int am_manifest_open(struct am_manifest **out, const char *path, const char *images, int field,
		     int id_from_image, struct lvd_error *err)
{
	struct lvd_manifest_opts mo = {0};
	mo.id_from_image = id_from_image;
	struct am_manifest *m = calloc(1, sizeof *m);
	if (!m)
		return lvd_error_set(err, LVD_ERR_NOMEM, "manifest");
	m->field = field;
	m->root = images ? lvd_strdup(images) : dir_of(path);
	int rc;
	/* count the samples once (bad lines count: they are samples that will be skipped) */
	if ((rc = lvd_manifest_open(&m->m, path, &mo, err)))
		goto fail;
	for (;;) {
		rc = lvd_manifest_next(m->m, &m->s, err);
		if (rc == LVD_MANIFEST_EOF)
			break;
		if (rc == LVD_ERR_IO || rc == LVD_ERR_NOMEM)
			goto fail;
		m->count++;
	}
	lvd_manifest_close(m->m);
	lvd_sample_clear(&m->s);
	if ((rc = lvd_manifest_open(&m->m, path, &mo, err)))
		goto fail;
	*out = m;
	return 0;
fail:
	am_manifest_close(m);
	*out = NULL;
	return rc;
}

uint64_t am_manifest_count(const struct am_manifest *m)
{
	return m->count;
}

int am_manifest_next(struct am_manifest *m, struct am_input *in, struct lvd_error *err)
{
	memset(in, 0, sizeof *in);
	if (m->next_index >= m->count)
		return AM_EOF;
	int rc = lvd_manifest_next(m->m, &m->s, err);
	if (rc == LVD_MANIFEST_EOF)
		return AM_EOF;
	if (rc == LVD_ERR_IO || rc == LVD_ERR_NOMEM) {
		lvd_error_log("%s", err->msg);
		m->next_index = m->count; /* stop */
		m->failed = 1;
		return AM_EOF;
	}
	in->index = m->next_index++;
	if (rc)
		return rc;
	in->id = lvd_strdup(m->s.id);
	if (m->s.image)
		in->image = lvd_strdup(m->s.image);
	if (!in->id || (m->s.image && !in->image))
		return lvd_error_set(err, LVD_ERR_NOMEM, "manifest sample");
	if ((rc = lvd_sample_sd_text(&m->s, m->field, &in->text, err)))
		return rc;
	if (!m->s.image)
		return lvd_error_set(err, LVD_ERR_INVALID, "sample '%s': no image", in->id);
	if (m->s.image[0] == '/') {
		in->image_path = lvd_strdup(m->s.image);
	} else {
		size_t n = strlen(m->root) + strlen(m->s.image) + 2;
		if ((in->image_path = malloc(n)))
			snprintf(in->image_path, n, "%s/%s", m->root, m->s.image);
	}
	if (!in->image_path)
		return lvd_error_set(err, LVD_ERR_NOMEM, "manifest sample");
	return 0;
}

void am_manifest_close(struct am_manifest *m)
{
	if (!m)
		return;
	lvd_manifest_close(m->m);
	lvd_sample_clear(&m->s);
	free(m->root);
	free(m);
}

/* ---- provenance ------------------------------------------------------------------------- */

static int hash_st_header(const char *path, char hex[LVD_SHA256_HEX_LEN], struct lvd_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", path);
	uint8_t lenb[8];
	int rc = lvd_pread_full(fd, lenb, 8, 0, path, err);
	uint64_t n = 0;
	for (int i = 0; i < 8; i++)
		n |= (uint64_t)lenb[i] << (8 * i);
	if (!rc && n > ((uint64_t)100 << 20))
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: safetensors header of %llu bytes", path,
				   (unsigned long long)n);
	uint8_t *buf = rc ? NULL : malloc(8 + n);
	if (!rc && !buf)
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: header", path);
	if (!rc) {
		memcpy(buf, lenb, 8);
		rc = lvd_pread_full(fd, buf + 8, n, 8, path, err);
	}
	if (!rc) {
		unsigned char d[LVD_SHA256_LEN];
		lvd_sha256(buf, 8 + n, d);
		lvd_sha256_hex(d, hex);
	}
	free(buf);
	close(fd);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds rel -> hash for every *.safetensors in dir/sub, sorted by name. */
static int hash_folder(const char *dir, const char *sub, json_t *o, struct lvd_error *err)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, sub);
	DIR *d = opendir(path);
	if (!d)
		return 0; /* a component the loader will complain about, or not need */
	char *names[256];
	int n = 0, rc = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 256) {
		size_t l = strlen(e->d_name);
		if (l > 12 && !strcmp(e->d_name + l - 12, ".safetensors"))
			if ((names[n] = lvd_strdup(e->d_name)))
				n++;
	}
	closedir(d);
	qsort(names, (size_t)n, sizeof names[0], cmp_str);
	for (int i = 0; i < n; i++) {
		char hex[LVD_SHA256_HEX_LEN], full[4400], rel[600];
		snprintf(full, sizeof full, "%s/%s", path, names[i]);
		snprintf(rel, sizeof rel, "%s/%s", sub, names[i]);
		if (!rc && !(rc = hash_st_header(full, hex, err)))
			json_object_set_new(o, rel, json_string(hex));
		free(names[i]);
	}
	return rc;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s && s[1] ? s + 1 : p;
}

/* o[key] = sha256 of dir/rel when that file exists. */
static int hash_if_present(const char *dir, const char *rel, const char *key, json_t *o, struct lvd_error *err)
{
	char p[4200];
	unsigned char d[LVD_SHA256_LEN];
	char hex[LVD_SHA256_HEX_LEN];
	snprintf(p, sizeof p, "%s/%s", dir, rel);
	if (access(p, F_OK))
		return 0;
	int rc = lvd_sha256_file(p, d, err);
	if (!rc) {
		lvd_sha256_hex(d, hex);
		json_object_set_new(o, key, json_string(hex));
	}
	return rc;
}

int am_hash_sd_headers(const char *sd_path, json_t **out, struct lvd_error *err)
{
	json_t *o = json_object();
	struct stat st;
	int rc = 0;
	if (!o)
		return lvd_error_set(err, LVD_ERR_NOMEM, "hashes");
	if (stat(sd_path, &st))
		rc = lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", sd_path);
	else if (S_ISDIR(st.st_mode)) {
		const char *subs[3] = {"text_encoder", "unet", "vae"};
		for (int i = 0; i < 3 && !rc; i++)
			rc = hash_folder(sd_path, subs[i], o, err);
		/* the configs the loader and the schedule read: editing one changes results */
		const char *cfgs[5] = {"model_index.json", "text_encoder/config.json", "unet/config.json",
				       "vae/config.json", "scheduler/scheduler_config.json"};
		for (int i = 0; i < 5 && !rc; i++)
			rc = hash_if_present(sd_path, cfgs[i], cfgs[i], o, err);
	} else {
		char hex[LVD_SHA256_HEX_LEN];
		if (!(rc = hash_st_header(sd_path, hex, err)))
			json_object_set_new(o, base_name(sd_path), json_string(hex));
	}
	if (rc) {
		json_decref(o);
		return rc;
	}
	*out = o;
	return 0;
}

int am_hash_tokenizer(const char *path, json_t **out, struct lvd_error *err)
{
	json_t *o = json_object();
	struct stat st;
	int rc = 0;
	unsigned char d[LVD_SHA256_LEN];
	char hex[LVD_SHA256_HEX_LEN];
	if (!o)
		return lvd_error_set(err, LVD_ERR_NOMEM, "hashes");
	if (stat(path, &st))
		rc = lvd_error_errno(err, LVD_ERR_IO, "cannot open '%s'", path);
	else if (S_ISDIR(st.st_mode)) {
		/* the vocabulary, and the configs that give the pad token (tok.c) */
		const char *files[6] = {"vocab.json", "merges.txt", "tokenizer.json", "bpe_simple_vocab_16e6.txt.gz",
					"special_tokens_map.json", "tokenizer_config.json"};
		for (int i = 0; i < 6 && !rc; i++)
			rc = hash_if_present(path, files[i], files[i], o, err);
	} else if (!(rc = lvd_sha256_file(path, d, err))) {
		lvd_sha256_hex(d, hex);
		json_object_set_new(o, base_name(path), json_string(hex));
		/* a file in a tokenizer folder: that folder's pad-token configs count too */
		char dir[4096];
		snprintf(dir, sizeof dir, "%s", path);
		char *sl = strrchr(dir, '/');
		if (sl)
			*sl = 0;
		else
			snprintf(dir, sizeof dir, ".");
		if (!(rc = hash_if_present(dir, "special_tokens_map.json", "special_tokens_map.json", o, err)))
			rc = hash_if_present(dir, "tokenizer_config.json", "tokenizer_config.json", o, err);
	}
	if (rc) {
		json_decref(o);
		return rc;
	}
	*out = o;
	return 0;
}

int am_item_next(struct am_manifest *m, struct am_input *in, struct lvd_attnmap_sample *s,
		 struct lvd_shardrun_item *base, const char *what)
{
	struct lvd_error err = {0};
	int r = am_manifest_next(m, in, &err);
	if (r == AM_EOF)
		return m->failed ? LVD_SHARDRUN_FATAL : LVD_SHARDRUN_EOF;
	base->index = s->index = in->index;
	base->id = s->id = in->id;
	base->image = s->image = in->image;
	s->text = in->text;
	s->image_path = in->image_path;
	s->tok = &in->tok;
	if (r)
		lvd_shardrun_fail(base, what, &err);
	return 0;
}
