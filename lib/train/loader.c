/* The lvd-sft pack loader (see loader.h): pack and model checks, the epoch order, the
 * producer threads and the batch assembly. */
#include "train/loader.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/sha256.h"
#include "io/container.h"
#include "io/fileutil.h"
#include "io/image.h"
#include "io/json.h"
#include "io/splits.h"
#include "lavender/geometry.h"
#include "lavender/packrec.h"
#include "train/loader_mcv.h"

#define PATH_CAP 4096

struct shard {
	struct lvd_rec_reader *r;
	uint64_t first, n;         /* global number of its record 0; records */
};

/* One sample's results before assembly (owned by its slot). */
struct sample {
	int32_t *tokens, *labels;  /* [len] (taken from the decoded record) */
	int len;
	uint32_t *rows;            /* [R] capture rows (own copy, or NULL when R == 0) */
	int R, W;
	int aspect_id, num_tiles;
	int image_token;           /* tokens[image_pos], -1 without an image token */
	int mask[LVD_GEOM_MAX_TILES];
	struct lvd_latt_plan plan;
	int has_plan;
	struct loader_mcv_samp *mcv; /* MiniCPM: pictures and words */
	int rc;
	struct lvd_error err;
};

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_HELD };

struct slot {
	int state;
	int done;                  /* samples finished */
	int rc;
	struct lvd_error err;
	struct lvd_loader_batch b;
	struct sample *s;          /* [batch] */
	size_t cap_ids, cap_lab, cap_cm, cap_rows;  /* capacities of the growing arrays */
	/* MiniCPM: the samples' parts for loader_mcv_assemble ([batch] each) */
	struct loader_mcv_bufs mb;
	struct loader_mcv_samp **mcvp;
	uint32_t **rowp;
	int *Rp;
};

struct lvd_loader {
	struct lvd_loader_opts o;
	int mcv;                   /* model_kind MiniCPM */
	struct loader_mcv_cfg mc;
	struct lvd_mllama_image_cfg img;
	int TL;
	size_t tile_floats;        /* 3·tile·tile */
	struct shard *sh;
	size_t nsh;
	uint64_t N, G, steps_full;
	/* epoch orders (shuffle only): two cached epochs, touched under mu */
	size_t *perm[2];
	uint64_t perm_epoch[2];
	int perm_ok[2];
	/* producers */
	pthread_mutex_t mu;
	pthread_cond_t cv_work, cv_ready;
	pthread_t *th;
	int nth, quit, pause;
	uint64_t gen;
	struct lvd_loader_cursor start;
	uint64_t claim_seq;        /* step being claimed sample by sample */
	int claim_active, claim_i;
	int in_flight;
	/* consumer */
	uint64_t next_seq;
	int held, failed, fail_rc;
	struct lvd_error fail_err;
	struct slot *slots;        /* [prefetch] */
};

void lvd_loader_opts_default(struct lvd_loader_opts *o)
{
	memset(o, 0, sizeof *o);
	o->batch = 1;
	o->world = 1;
	o->shuffle = 1;
	o->drop_last = 1;
	o->threads = 2;
	o->prefetch = 2;
	o->pad_id = -1;
	o->images = 1;
	o->image_token = -1;
}

void lvd_loader_order(size_t *out, size_t n, uint64_t seed, uint64_t epoch, int shuffle)
{
	for (size_t i = 0; i < n; i++)
		out[i] = i;
	if (shuffle && n > 1)
		lvd_rng_shuffle(out, n, seed, LVD_LOADER_STREAM + epoch);
}

/* ---- pack.json and the model check ------------------------------------------------------ */

static int load_json(json_t **out, const char *path, struct lvd_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = lvd_file_read_all(path, (size_t)64 << 20, &buf, &len, err);
	if (rc)
		return rc;
	json_error_t je;
	*out = json_loadb(buf, len, 0, &je);
	free(buf);
	if (!*out || !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: not a JSON object (%s)", path, je.text);
	}
	return 0;
}

/* pack.json's inputs.model (new reference); for a pack of --shard i/N splits, split 0's
 * pack-00000-of-NNNNN.json (every shard header is compared with it). */
static int pack_model_fp(json_t **out, const char *pack, struct lvd_error *err)
{
	char path[PATH_CAP];
	char **files = NULL;
	size_t nf = 0;
	int rc = lvd_split_list(pack, "pack", ".json", &files, &nf, err);
	if (rc && rc != LVD_ERR_NOTFOUND)
		return rc;
	snprintf(path, sizeof path, "%s", rc ? "" : files[0]);
	if (rc) /* none: load_json names the missing pack.json */
		snprintf(path, sizeof path, "%s/pack.json", pack);
	lvd_split_list_free(files, nf);
	json_t *root = NULL;
	rc = load_json(&root, path, err);
	if (rc)
		return rc;
	json_t *m = json_object_get(json_object_get(root, "inputs"), "model");
	if (!json_is_object(m)) {
		json_decref(root);
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: no inputs.model fingerprints (not an lvd-pack folder?)",
				     path);
	}
	*out = json_incref(m);
	json_decref(root);
	return 0;
}

int lvd_loader_check_model(const char *pack, const char *model, struct lvd_error *err)
{
	json_t *fp = NULL;
	int rc = pack_model_fp(&fp, pack, err);
	if (rc)
		return rc;
	char tok[PATH_CAP];
	snprintf(tok, sizeof tok, "%s/tokenizer.json", model);
	if (access(tok, F_OK))
		snprintf(tok, sizeof tok, "%s/tokenizer.model", model);
	const char *keys[3] = {"config_sha256", "preprocessor_config_sha256", "tokenizer_sha256"};
	const char *what[3] = {"config", "preprocessor config", "tokenizer"};
	for (int k = 0; k < 3 && !rc; k++) {
		char path[PATH_CAP];
		if (k == 2)
			snprintf(path, sizeof path, "%s", tok);
		else
			snprintf(path, sizeof path, "%s/%s", model, k ? "preprocessor_config.json" : "config.json");
		const char *want = json_string_value(json_object_get(fp, keys[k]));
		int have = !access(path, F_OK);
		if (!want && !have)
			continue;
		if (!want) {
			rc = lvd_error_set(err, LVD_ERR_INVALID,
					   "%s/pack.json: the pack was made for another %s: %s exists, the pack recorded none",
					   pack, what[k], path);
			break;
		}
		if (!have) {
			rc = lvd_error_set(err, LVD_ERR_INVALID,
					   "%s/pack.json: the pack was made for another %s: %s is missing (the pack recorded "
					   "sha256 %.16s...)",
					   pack, what[k], path, want);
			break;
		}
		unsigned char d[LVD_SHA256_LEN];
		char hex[LVD_SHA256_HEX_LEN];
		if ((rc = lvd_sha256_file(path, d, err)))
			break;
		lvd_sha256_hex(d, hex);
		if (strcmp(hex, want))
			rc = lvd_error_set(err, LVD_ERR_INVALID,
					   "%s/pack.json: the pack was made for another %s: %s has sha256 %.16s..., the pack "
					   "recorded %.16s...",
					   pack, what[k], path, hex, want);
	}
	json_decref(fp);
	return rc;
}

int lvd_loader_image_cfg(struct lvd_mllama_image_cfg *img, const char *model, struct lvd_error *err)
{
	char path[PATH_CAP], pre[PATH_CAP];
	snprintf(path, sizeof path, "%s/config.json", model);
	snprintf(pre, sizeof pre, "%s/preprocessor_config.json", model);
	int have_pre = !access(pre, F_OK);
	int rc = 0;
	lvd_mllama_image_cfg_default(img);
	struct lvd_geom_cfg g;
	lvd_geom_cfg_default(&g);
	const char *files[2] = {path, pre};
	for (int k = 0; k < 1 + have_pre && !rc; k++) {
		char *buf = NULL;
		size_t len = 0;
		rc = lvd_file_read_all(files[k], (size_t)64 << 20, &buf, &len, err);
		if (!rc)
			rc = lvd_geom_cfg_from_json(&g, buf, len, files[k], err);
		free(buf);
	}
	if (rc)
		return rc;
	img->tile = g.tile_size;
	img->max_tiles = g.max_tiles;
	if (have_pre) {
		struct lvd_json j;
		double mean[3], sd[3];
		size_t nm = 0, ns = 0;
		if ((rc = lvd_json_load(&j, pre, err)))
			return rc;
		if (lvd_json_has(&j, "image_mean") &&
		    (rc = lvd_json_get_double_array(&j, "image_mean", mean, 3, &nm, err)) == 0 && nm != 3)
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: image_mean has %zu values, want 3", pre, nm);
		if (!rc && lvd_json_has(&j, "image_std") &&
		    (rc = lvd_json_get_double_array(&j, "image_std", sd, 3, &ns, err)) == 0 && ns != 3)
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: image_std has %zu values, want 3", pre, ns);
		lvd_json_release(&j);
		if (rc)
			return rc;
		for (int c = 0; c < 3; c++) {
			if (nm)
				img->mean[c] = (float)mean[c];
			if (ns) {
				if (!(sd[c] > 0))
					return lvd_error_set(err, LVD_ERR_INVALID, "%s: image_std[%d] = %g", pre, c, sd[c]);
				img->std[c] = (float)sd[c];
			}
		}
	}
	return 0;
}

/* Image processor config and pad id from the model folder. */
static int model_defaults(struct lvd_loader *l, struct lvd_error *err)
{
	const char *model = l->o.model;
	char path[PATH_CAP];
	snprintf(path, sizeof path, "%s/config.json", model);
	int rc = 0;
	if (!l->mcv && l->o.image.tile == 0 && (rc = lvd_loader_image_cfg(&l->img, model, err)))
		return rc;
	if (l->o.pad_id < 0) {
		struct lvd_json j;
		int pad = -1;
		if ((rc = lvd_json_load(&j, path, err)))
			return rc;
		rc = lvd_json_get_i32_or(&j, "text_config.pad_token_id", -1, -1, 1 << 30, &pad, err);
		if (!rc && pad < 0)
			rc = lvd_json_get_i32_or(&j, "pad_token_id", -1, -1, 1 << 30, &pad, err);
		lvd_json_release(&j);
		if (rc)
			return rc;
		if (pad < 0 && l->mcv)
			pad = 0; /* causal decoder: right padding is never attended by real tokens */
		if (pad < 0)
			return lvd_error_set(err, LVD_ERR_INVALID, "%s: no text_config.pad_token_id (give the loader a pad id)",
					     path);
		l->o.pad_id = pad;
	}
	return 0;
}

/* ---- shards -------------------------------------------------------------------------------- */

static int open_ledger(struct lvd_loader *l, const char *pack, const char *path, const json_t *fp, size_t *capp,
		       struct lvd_error *err);

static int open_shards(struct lvd_loader *l, struct lvd_error *err)
{
	const char *pack = l->o.pack;
	json_t *fp = NULL;
	int rc = pack_model_fp(&fp, pack, err);
	if (rc)
		return rc;
	char **ledgers = NULL;
	size_t nled = 0, cap = 0;
	rc = lvd_split_list(pack, "shards", ".jsonl", &ledgers, &nled, err);
	if (rc == LVD_ERR_NOTFOUND) { /* none: reading shards.jsonl names it */
		char path[PATH_CAP];
		snprintf(path, sizeof path, "%s/shards.jsonl", pack);
		rc = open_ledger(l, pack, path, fp, &cap, err);
	}
	for (size_t li = 0; li < nled && !rc; li++)
		rc = open_ledger(l, pack, ledgers[li], fp, &cap, err);
	lvd_split_list_free(ledgers, nled);
	json_decref(fp);
	if (!rc && l->N == 0)
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: the pack holds no records", pack);
	return rc;
}

/* The shards of one ledger (shards.jsonl or a split's) appended to l->sh: "file" names
 * the shard (train-NNNNN.lvdp from "shard" in ledgers written before "file"). */
static int open_ledger(struct lvd_loader *l, const char *pack, const char *path, const json_t *fp, size_t *capp,
		       struct lvd_error *err)
{
	char *buf = NULL;
	size_t len = 0, cap = *capp;
	int rc;
	if ((rc = lvd_file_read_all(path, (size_t)1 << 30, &buf, &len, err)))
		return rc;
	long prev = -1;
	uint64_t lineno = 0;
	for (char *p = buf, *end = buf + len; p < end && !rc;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *le = nl ? nl : end;
		lineno++;
		size_t ll = (size_t)(le - p);
		char *line = p;
		p = nl ? nl + 1 : end;
		if (ll == 0)
			continue;
		json_error_t je;
		json_t *j = json_loadb(line, ll, 0, &je);
		json_t *js = json_object_get(j, "shard"), *jr = json_object_get(j, "records"), *jf = json_object_get(j, "file");
		const char *fn = json_string_value(jf);
		if (!json_is_object(j) || !json_is_integer(js) || !json_is_integer(jr) || json_integer_value(js) <= prev ||
		    json_integer_value(jr) < 0 || (jf && (!fn || !*fn || strchr(fn, '/')))) {
			json_decref(j);
			rc = lvd_error_set(err, LVD_ERR_FORMAT,
					   "%s:%llu: not a shard line (want increasing \"shard\", \"records\" and a "
					   "\"file\" name in the folder)", path,
					   (unsigned long long)lineno);
			break;
		}
		long k = (long)json_integer_value(js);
		uint64_t want = (uint64_t)json_integer_value(jr);
		char sp[PATH_CAP];
		if (fn)
			snprintf(sp, sizeof sp, "%s/%s", pack, fn);
		else
			snprintf(sp, sizeof sp, "%s/train-%05ld.lvdp", pack, k);
		json_decref(j);
		prev = k;
		if (l->nsh == cap) {
			size_t nc = cap ? 2 * cap : 16;
			struct shard *ns = lvd_realloc_array(l->sh, nc, sizeof *ns);
			if (!ns) {
				rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: shard list", path);
				break;
			}
			l->sh = ns;
			cap = nc;
		}
		struct shard *s = &l->sh[l->nsh];
		memset(s, 0, sizeof *s);
		if ((rc = lvd_rec_open(&s->r, sp, LVD_REC_KIND_PACK, err)))
			break;
		l->nsh++;
		s->first = l->N;
		s->n = lvd_rec_count(s->r);
		l->N += s->n;
		if (s->n != want) {
			rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: %llu records, %s line %llu says %llu", sp,
					   (unsigned long long)s->n, path, (unsigned long long)lineno,
					   (unsigned long long)want);
			break;
		}
		json_t *h = json_loads(lvd_rec_header(s->r, NULL), 0, NULL);
		json_t *hm = json_object_get(json_object_get(h, "inputs"), "model");
		int same = hm && json_equal(hm, fp);
		json_decref(h);
		if (!same)
			rc = lvd_error_set(err, LVD_ERR_INVALID,
					   "%s: its header's inputs.model differs from %s/pack.json (a shard of another pack?)",
					   sp, pack);
	}
	free(buf);
	*capp = cap;
	return rc;
}

static size_t shard_of(const struct lvd_loader *l, uint64_t g)
{
	size_t lo = 0, hi = l->nsh;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (l->sh[mid].first <= g)
			lo = mid;
		else
			hi = mid;
	}
	while (lo + 1 < l->nsh && l->sh[lo].n == 0)
		lo++;
	return lo;
}

uint64_t lvd_loader_records(const struct lvd_loader *l) { return l->N; }
uint64_t lvd_loader_steps_per_epoch(const struct lvd_loader *l) { return l->steps_full; }

const char *lvd_loader_record_shard(const struct lvd_loader *l, uint64_t g)
{
	LVD_ASSERT(g < l->N);
	return lvd_rec_path(l->sh[shard_of(l, g)].r);
}

const char *lvd_loader_record_id(const struct lvd_loader *l, uint64_t g)
{
	LVD_ASSERT(g < l->N);
	const struct shard *s = &l->sh[shard_of(l, g)];
	return lvd_rec_id(s->r, (size_t)(g - s->first));
}

/* ---- steps ---------------------------------------------------------------------------------- */

static uint64_t steps_from(const struct lvd_loader *l, uint64_t p)
{
	if (p >= l->N)
		return 0;
	uint64_t left = l->N - p;
	return l->o.drop_last ? left / l->G : (left + l->G - 1) / l->G;
}

/* The global step of sequence number seq after the start cursor. */
static void step_of(const struct lvd_loader *l, uint64_t seq, uint64_t *epoch, uint64_t *pos)
{
	uint64_t f = steps_from(l, l->start.pos);
	if (seq < f) {
		*epoch = l->start.epoch;
		*pos = l->start.pos + seq * l->G;
		return;
	}
	seq -= f;
	*epoch = l->start.epoch + 1 + seq / l->steps_full;
	*pos = (seq % l->steps_full) * l->G;
}

struct lvd_loader_cursor lvd_loader_cursor(const struct lvd_loader *l)
{
	struct lvd_loader_cursor c;
	step_of(l, l->next_seq, &c.epoch, &c.pos);
	return c;
}

/* Record number at order position p of epoch e (under mu). */
static uint64_t order_at(struct lvd_loader *l, uint64_t e, uint64_t p)
{
	if (!l->o.shuffle)
		return p;
	int k = l->perm_ok[0] && l->perm_epoch[0] == e ? 0 : l->perm_ok[1] && l->perm_epoch[1] == e ? 1 : -1;
	if (k < 0) {
		/* claims go forward in epochs: replace the older one */
		k = !l->perm_ok[0] ? 0 : !l->perm_ok[1] ? 1 : l->perm_epoch[0] < l->perm_epoch[1] ? 0 : 1;
		lvd_loader_order(l->perm[k], (size_t)l->N, l->o.seed, e, 1);
		l->perm_epoch[k] = e;
		l->perm_ok[k] = 1;
	}
	return l->perm[k][p];
}

/* ---- one sample --------------------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int load_image(struct lvd_loader *l, struct lvd_image *im, const struct lvd_packrec *rec, const char *where,
		      struct lvd_error *err)
{
	int rc;
	if (rec->flags & LVD_PACKREC_IMAGE) {
		rc = lvd_image_decode(im, rec->image, rec->image_len, LVD_ALPHA_WHITE, "embedded image", err);
	} else {
		char path[PATH_CAP];
		const char *p = (const char *)rec->image;
		if (l->o.image_root && p[0] != '/')
			snprintf(path, sizeof path, "%s/%s", l->o.image_root, p);
		else
			snprintf(path, sizeof path, "%s", p);
		rc = lvd_image_load(im, path, LVD_ALPHA_WHITE, err);
	}
	if (rc)
		return lvd_error_prefix(err, "%s: the image no longer decodes: ", where);
	if ((uint32_t)im->w != rec->img_w || (uint32_t)im->h != rec->img_h)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: the image is %dx%d, the pack recorded %ux%u (image changed?)",
				     where, im->w, im->h, rec->img_w, rec->img_h);
	return 0;
}

/* The sample's capture rows: the sorted distinct query positions (the plan's rule). */
static int capture_rows(struct sample *s, const struct lvd_packrec *rec, const char *where, struct lvd_error *err)
{
	size_t nq = 0;
	for (uint32_t w = 0; w < rec->W; w++)
		nq += rec->words[w].n_query;
	if (!nq)
		return 0;
	if (!(s->rows = lvd_alloc_array(nq, sizeof *s->rows)))
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: capture rows", where);
	size_t k = 0;
	for (uint32_t w = 0; w < rec->W; w++)
		for (uint32_t q = 0; q < rec->words[w].n_query; q++)
			s->rows[k++] = rec->words[w].query[q];
	qsort(s->rows, nq, sizeof *s->rows, cmp_u32);
	size_t R = 0;
	for (size_t j = 0; j < nq; j++)
		if (!R || s->rows[R - 1] != s->rows[j])
			s->rows[R++] = s->rows[j];
	s->R = (int)R;
	return 0;
}

static void do_sample(struct lvd_loader *l, struct slot *sl, int i)
{
	struct sample *s = &sl->s[i];
	const uint64_t g = sl->b.records[i];
	const struct shard *sh = &l->sh[shard_of(l, g)];
	const size_t ri = (size_t)(g - sh->first);
	char where[PATH_CAP + 1200];
	snprintf(where, sizeof where, "%s: record %zu ('%s')", lvd_rec_path(sh->r), ri, lvd_rec_id(sh->r, ri));
	struct lvd_error *err = &s->err;
	struct lvd_packrec rec = {0};
	struct lvd_image im = {0};
	void *buf = NULL;
	size_t len = 0;
	int rc = lvd_rec_read(sh->r, ri, &buf, &len, err);
	if (!rc)
		rc = lvd_packrec_decode(&rec, buf, len, where, err);
	if (!rc)
		rc = lvd_rec_check_id(sh->r, ri, rec.id, where, err);
	free(buf);
	if (rc)
		goto out;
	if (!(rec.flags & LVD_PACKREC_MCV) != !l->mcv) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: %s record, the model is %s", where,
				   lvd_loader_model_name(!!(rec.flags & LVD_PACKREC_MCV)), lvd_loader_model_name(l->mcv));
		goto out;
	}
	if (capture_rows(s, &rec, where, err)) {
		rc = LVD_ERR_NOMEM;
		goto out;
	}
	if (l->mcv) {
		if (l->o.images && (rc = load_image(l, &im, &rec, where, err)))
			goto out;
		if ((rc = loader_mcv_sample(&s->mcv, &l->mc, &rec, l->o.images ? &im : NULL, s->rows, s->R, where, err)))
			goto out;
		goto common;
	}
	if (rec.tile_px != (uint32_t)l->img.tile) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: tile_px %u, the image processor uses %d (another model?)", where,
				   rec.tile_px, l->img.tile);
		goto out;
	}
	if (l->o.images) {
		if ((rc = load_image(l, &im, &rec, where, err)))
			goto out;
		float *px = sl->b.pixel_values + (size_t)i * l->TL * l->tile_floats;
		rc = lvd_mllama_image_process(px, &s->aspect_id, s->mask, &s->num_tiles, &l->img, im.px, im.h, im.w, err);
		if (rc) {
			lvd_error_prefix(err, "%s: ", where);
			goto out;
		}
		if ((uint32_t)s->aspect_id != rec.aspect_id) {
			rc = lvd_error_set(err, LVD_ERR_INVALID,
					   "%s: the image processor gives aspect ratio id %d, the pack recorded %u (another "
					   "model config?)",
					   where, s->aspect_id, rec.aspect_id);
			goto out;
		}
	} else {
		s->aspect_id = (int)rec.aspect_id;
		s->num_tiles = (int)(rec.tiles_h * rec.tiles_w);
		for (int t = 0; t < l->TL; t++)
			s->mask[t] = t < s->num_tiles || t == 0;
	}
	if (l->o.heads > 0) {
		rc = lvd_latt_plan_from_packrec(&s->plan, &rec, l->o.heads, l->TL * l->o.tile_tok, 0, l->o.tile_tok, l->TL,
						l->o.official, err);
		if (rc) {
			lvd_latt_plan_free(&s->plan);
			lvd_error_prefix(err, "%s: ", where);
			goto out;
		}
		s->has_plan = 1;
	}
common:
	s->image_token = rec.image_pos < rec.T ? rec.tokens[rec.image_pos] : -1;
	if (l->o.image_token >= 0 && rec.image_pos < rec.T && s->image_token != l->o.image_token) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: image_pos %u holds token %d, not the model's <|image|> %d",
				   where, rec.image_pos, s->image_token, l->o.image_token);
		goto out;
	}
	s->W = (int)rec.W;
	s->len = (int)rec.T;
	s->tokens = rec.tokens;
	s->labels = rec.labels;
	rec.tokens = rec.labels = NULL;
out:
	s->rc = rc;
	lvd_image_free(&im);
	lvd_packrec_free(&rec);
}

static void sample_clear(struct sample *s)
{
	free(s->tokens);
	free(s->labels);
	free(s->rows);
	if (s->has_plan)
		lvd_latt_plan_free(&s->plan);
	loader_mcv_samp_free(s->mcv);
	memset(s, 0, sizeof *s);
}

/* ---- batch assembly ----------------------------------------------------------------------- */

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
	if (n <= *cap)
		return 0;
	void *q = lvd_realloc_array(*p, n, size);
	if (!q)
		return -1;
	*p = q;
	*cap = n;
	return 0;
}

static void assemble(struct lvd_loader *l, struct slot *sl)
{
	struct lvd_loader_batch *b = &sl->b;
	const int B = b->B, TL = l->TL;
	for (int i = 0; i < B; i++)
		if (sl->s[i].rc) {
			sl->rc = sl->s[i].rc;
			sl->err = sl->s[i].err;
			return;
		}
	int T = 0;
	size_t nrows = 0;
	for (int i = 0; i < B; i++) {
		T = sl->s[i].len > T ? sl->s[i].len : T;
		nrows += (size_t)sl->s[i].R;
	}
	b->T = T;
	size_t bt = (size_t)B * T;
	if (grow((void **)&b->input_ids, &sl->cap_ids, bt ? bt : 1, sizeof(int)) ||
	    grow((void **)&b->labels, &sl->cap_lab, bt ? bt : 1, sizeof(int)) ||
	    (!l->mcv && grow((void **)&b->cross_attention_mask, &sl->cap_cm, bt ? bt * TL : 1, sizeof(int))) ||
	    grow((void **)&b->cap_rows, &sl->cap_rows, nrows ? nrows : 1, sizeof(int))) {
		sl->rc = lvd_error_set(&sl->err, LVD_ERR_NOMEM, "loader: batch of %d x %d tokens", B, T);
		return;
	}
	int64_t nlab = 0, npairs = 0;
	const int t0 = l->mcv ? 0 : 1; /* MiniCPM's labels are aligned with the logits */
	b->cap_off[0] = 0;
	for (int i = 0; i < B; i++) {
		const struct sample *s = &sl->s[i];
		int *ids = b->input_ids + (size_t)i * T, *lab = b->labels + (size_t)i * T;
		for (int t = 0; t < T; t++) {
			ids[t] = t < s->len ? s->tokens[t] : l->o.pad_id;
			lab[t] = t < s->len ? s->labels[t] : -100;
			nlab += t >= t0 && lab[t] != -100;
		}
		b->lengths[i] = s->len;
		if (!l->mcv) {
			b->aspect_ratio_ids[i] = s->aspect_id;
			for (int t = 0; t < TL; t++)
				b->aspect_ratio_mask[(size_t)i * TL + t] = s->mask[t];
			lvd_mllama_cross_mask(b->cross_attention_mask + (size_t)i * T * TL, ids, T, s->image_token, 1, TL,
					      &s->num_tiles);
		} else {
			sl->mcvp[i] = s->mcv;
			sl->rowp[i] = s->rows;
			sl->Rp[i] = s->R;
		}
		for (int r = 0; r < s->R; r++)
			b->cap_rows[b->cap_off[i] + r] = (int)s->rows[r];
		b->cap_off[i + 1] = b->cap_off[i] + s->R;
		if (s->has_plan)
			b->plans[i] = s->plan;
		npairs += s->W;
	}
	b->n_label_tokens = nlab;
	b->n_pairs = npairs;
	if (l->mcv && B > 0)
		sl->rc = loader_mcv_assemble(&sl->mb, b, sl->mcvp, sl->rowp, sl->Rp, &sl->err);
	else if (l->mcv)
		b->NI = 0;
}

/* ---- producers ---------------------------------------------------------------------------- */

/* Sets up step seq in its (free) slot; under mu. */
static void setup(struct lvd_loader *l, struct slot *sl, uint64_t seq)
{
	struct lvd_loader_batch *b = &sl->b;
	step_of(l, seq, &b->epoch, &b->pos);
	b->seq = seq;
	uint64_t lo = b->pos + (uint64_t)l->o.rank * (uint64_t)l->o.batch, hi = lo + (uint64_t)l->o.batch;
	if (hi > l->N)
		hi = l->N;
	b->B = lo < hi ? (int)(hi - lo) : 0;
	b->T = 0;
	for (int i = 0; i < b->B; i++) {
		uint64_t g = order_at(l, b->epoch, lo + (uint64_t)i);
		b->records[i] = g;
		b->ids[i] = lvd_loader_record_id(l, g);
	}
	b->n_label_tokens = b->n_pairs = 0;
	b->cap_off[0] = 0;
	sl->done = 0;
	sl->rc = 0;
	lvd_error_clear(&sl->err);
	sl->state = SLOT_FILLING;
}

static void *producer(void *arg)
{
	struct lvd_loader *l = arg;
	const uint64_t P = (uint64_t)l->o.prefetch;
	pthread_mutex_lock(&l->mu);
	while (!l->quit) {
		if (l->pause || l->failed) {
			pthread_cond_wait(&l->cv_work, &l->mu);
			continue;
		}
		if (!l->claim_active) {
			struct slot *sl = &l->slots[l->claim_seq % P];
			if (sl->state != SLOT_FREE) {
				pthread_cond_wait(&l->cv_work, &l->mu);
				continue;
			}
			setup(l, sl, l->claim_seq);
			if (sl->b.B == 0) {
				assemble(l, sl);
				sl->state = SLOT_READY;
				l->claim_seq++;
				pthread_cond_broadcast(&l->cv_ready);
				continue;
			}
			l->claim_active = 1;
			l->claim_i = 0;
		}
		struct slot *sl = &l->slots[l->claim_seq % P];
		int i = l->claim_i++;
		if (l->claim_i == sl->b.B) {
			l->claim_active = 0;
			l->claim_seq++;
		}
		uint64_t gen = l->gen;
		l->in_flight++;
		pthread_mutex_unlock(&l->mu);
		do_sample(l, sl, i);
		pthread_mutex_lock(&l->mu);
		if (gen == l->gen && ++sl->done == sl->b.B) {
			pthread_mutex_unlock(&l->mu);
			assemble(l, sl);
			pthread_mutex_lock(&l->mu);
			if (gen == l->gen)
				sl->state = SLOT_READY;
		}
		l->in_flight--;
		pthread_cond_broadcast(&l->cv_ready);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

static void slot_clear(struct lvd_loader *l, struct slot *sl)
{
	for (int i = 0; i < l->o.batch; i++)
		sample_clear(&sl->s[i]);
	if (sl->b.plans)
		memset(sl->b.plans, 0, sizeof *sl->b.plans * (size_t)l->o.batch);
}

/* ---- open / close ------------------------------------------------------------------------ */

static int check_opts(const struct lvd_loader_opts *o, struct lvd_error *err)
{
	if (!o->pack)
		return lvd_error_set(err, LVD_ERR_INVALID, "loader: no pack folder");
	if (o->batch < 1 || o->batch > (1 << 20))
		return lvd_error_set(err, LVD_ERR_INVALID, "loader: batch %d (want 1..%d)", o->batch, 1 << 20);
	if (o->world < 1 || o->world > (1 << 20) || o->rank < 0 || o->rank >= o->world)
		return lvd_error_set(err, LVD_ERR_INVALID, "loader: rank %d of world %d", o->rank, o->world);
	if (o->threads < 1 || o->threads > LVD_LOADER_MAX_THREADS)
		return lvd_error_set(err, LVD_ERR_INVALID, "loader: threads %d (want 1..%d)", o->threads,
				     LVD_LOADER_MAX_THREADS);
	if (o->prefetch < 1 || o->prefetch > LVD_LOADER_MAX_PREFETCH)
		return lvd_error_set(err, LVD_ERR_INVALID, "loader: prefetch %d (want 1..%d)", o->prefetch,
				     LVD_LOADER_MAX_PREFETCH);
	if (o->heads < 0 || (o->heads > 0 && o->tile_tok < 1))
		return lvd_error_set(err, LVD_ERR_INVALID, "loader: heads %d, tile_tok %d", o->heads, o->tile_tok);
	if (o->pad_id < 0 && !o->model)
		return lvd_error_set(err, LVD_ERR_INVALID, "loader: no pad id and no model folder to read it from");
	return 0;
}

static int slots_alloc(struct lvd_loader *l, struct lvd_error *err)
{
	const size_t bs = (size_t)l->o.batch;
	size_t px = 0;
	if (l->o.images && !l->mcv && lvd_size_mul4(&px, bs, (size_t)l->TL, l->tile_floats, 1))
		return lvd_error_set(err, LVD_ERR_NOMEM, "loader: pixel buffer size overflows");
	if (!(l->slots = lvd_calloc_array((size_t)l->o.prefetch, sizeof *l->slots)))
		return lvd_error_set(err, LVD_ERR_NOMEM, "loader: slots");
	for (int k = 0; k < l->o.prefetch; k++) {
		struct slot *sl = &l->slots[k];
		struct lvd_loader_batch *b = &sl->b;
		b->TL = l->TL;
		sl->s = lvd_calloc_array(bs, sizeof *sl->s);
		b->lengths = lvd_alloc_array(bs, sizeof(int));
		b->aspect_ratio_ids = lvd_alloc_array(bs, sizeof(int));
		b->aspect_ratio_mask = lvd_alloc_array(bs * (size_t)l->TL, sizeof(int));
		b->cap_off = lvd_alloc_array(bs + 1, sizeof(int));
		b->records = lvd_alloc_array(bs, sizeof *b->records);
		b->ids = lvd_calloc_array(bs, sizeof *b->ids);
		if (l->o.heads > 0 && !l->mcv)
			b->plans = lvd_calloc_array(bs, sizeof *b->plans);
		if (l->o.images && !l->mcv)
			b->pixel_values = lvd_alloc_aligned(px, sizeof(float));
		if (l->mcv) {
			b->n_images = lvd_alloc_array(bs, sizeof(int));
			b->mcv = lvd_calloc_array(bs, sizeof *b->mcv);
			sl->mcvp = lvd_calloc_array(bs, sizeof *sl->mcvp);
			sl->rowp = lvd_calloc_array(bs, sizeof *sl->rowp);
			sl->Rp = lvd_calloc_array(bs, sizeof *sl->Rp);
			if (!b->n_images || !b->mcv || !sl->mcvp || !sl->rowp || !sl->Rp)
				return lvd_error_set(err, LVD_ERR_NOMEM, "loader: batch buffers (%d samples)", l->o.batch);
		}
		if (!sl->s || !b->lengths || !b->aspect_ratio_ids || !b->aspect_ratio_mask || !b->cap_off || !b->records ||
		    !b->ids || (l->o.heads > 0 && !l->mcv && !b->plans) || (l->o.images && !l->mcv && !b->pixel_values))
			return lvd_error_set(err, LVD_ERR_NOMEM, "loader: batch buffers (%d samples)", l->o.batch);
	}
	return 0;
}

/* The first record's type against the model kind (records of a pack share it; a stray
 * one fails when read, named). */
static int check_kind(struct lvd_loader *l, struct lvd_error *err)
{
	if (l->N == 0)
		return 0;
	const struct shard *sh = &l->sh[shard_of(l, 0)];
	char where[PATH_CAP + 1200];
	snprintf(where, sizeof where, "%s: record 0 ('%s')", lvd_rec_path(sh->r), lvd_rec_id(sh->r, 0));
	void *buf = NULL;
	size_t len = 0;
	struct lvd_packrec rec = {0};
	int rc = lvd_rec_read(sh->r, 0, &buf, &len, err);
	if (!rc)
		rc = lvd_packrec_decode(&rec, buf, len, where, err);
	free(buf);
	if (!rc && !(rec.flags & LVD_PACKREC_MCV) != !l->mcv)
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: %s pack (%s), the model%s%s is %s", l->o.pack,
				   lvd_loader_model_name(!!(rec.flags & LVD_PACKREC_MCV)), where, l->o.model ? " " : "",
				   l->o.model ? l->o.model : "", lvd_loader_model_name(l->mcv) + (l->mcv ? 2 : 3));
	lvd_packrec_free(&rec);
	return rc;
}

int lvd_loader_open(struct lvd_loader **out, const struct lvd_loader_opts *opts,
		    const struct lvd_loader_cursor *cursor, struct lvd_error *err)
{
	*out = NULL;
	int rc = check_opts(opts, err);
	if (rc)
		return rc;
	struct lvd_loader *l = calloc(1, sizeof *l);
	if (!l)
		return lvd_error_set(err, LVD_ERR_NOMEM, "loader");
	l->o = *opts;
	l->img = opts->image;
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv_work, NULL);
	pthread_cond_init(&l->cv_ready, NULL);
	if (opts->image.tile == 0)
		lvd_mllama_image_cfg_default(&l->img);
	l->mcv = opts->model_kind == LVD_LOADER_MINICPMV;
	/* the shards first: a pack of the other model type is named as such */
	if ((rc = open_shards(l, err)) || (rc = check_kind(l, err)))
		goto fail;
	if (opts->model && ((rc = lvd_loader_check_model(opts->pack, opts->model, err)) || (rc = model_defaults(l, err))))
		goto fail;
	if (l->mcv && (rc = loader_mcv_cfg_load(&l->mc, &l->o, err)))
		goto fail;
	if (l->img.tile < 1 || l->img.max_tiles < 1 || l->img.max_tiles > LVD_GEOM_MAX_TILES) {
		rc = lvd_error_set(err, LVD_ERR_INVALID, "loader: image tile %d, max tiles %d", l->img.tile,
				   l->img.max_tiles);
		goto fail;
	}
	l->TL = l->mcv ? 1 : l->img.max_tiles;
	l->tile_floats = (size_t)3 * (size_t)l->img.tile * (size_t)l->img.tile;
	l->G = (uint64_t)l->o.world * (uint64_t)l->o.batch;
	l->steps_full = steps_from(l, 0);
	if (l->steps_full == 0) {
		rc = lvd_error_set(err, LVD_ERR_INVALID,
				   "%s: %llu records, fewer than one global step of %llu samples (world x batch)", l->o.pack,
				   (unsigned long long)l->N, (unsigned long long)l->G);
		goto fail;
	}
	if (l->o.shuffle && (!(l->perm[0] = lvd_alloc_array((size_t)l->N, sizeof(size_t))) ||
			     !(l->perm[1] = lvd_alloc_array((size_t)l->N, sizeof(size_t))))) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "loader: epoch order of %llu records", (unsigned long long)l->N);
		goto fail;
	}
	if (cursor)
		l->start = *cursor;
	if ((rc = slots_alloc(l, err)))
		goto fail;
	if (!(l->th = lvd_calloc_array((size_t)l->o.threads, sizeof *l->th))) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "loader: threads");
		goto fail;
	}
	for (int t = 0; t < l->o.threads; t++) {
		if (pthread_create(&l->th[t], NULL, producer, l)) {
			rc = lvd_error_set(err, LVD_ERR_IO, "loader: cannot start producer thread %d", t);
			goto fail;
		}
		l->nth++;
	}
	*out = l;
	return 0;
fail:
	lvd_loader_close(l);
	return rc;
}

void lvd_loader_close(struct lvd_loader *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->mu);
	l->quit = 1;
	pthread_cond_broadcast(&l->cv_work);
	pthread_mutex_unlock(&l->mu);
	for (int t = 0; t < l->nth; t++)
		pthread_join(l->th[t], NULL);
	free(l->th);
	if (l->slots)
		for (int k = 0; k < l->o.prefetch; k++) {
			struct slot *sl = &l->slots[k];
			struct lvd_loader_batch *b = &sl->b;
			if (sl->s)
				slot_clear(l, sl);
			free(sl->s);
			free(b->input_ids);
			free(b->labels);
			free(b->lengths);
			free(b->pixel_values);
			free(b->aspect_ratio_ids);
			free(b->aspect_ratio_mask);
			free(b->cross_attention_mask);
			free(b->cap_rows);
			free(b->cap_off);
			free(b->plans);
			free(b->records);
			free(b->ids);
			loader_mcv_bufs_free(b);
			free(sl->mcvp);
			free(sl->rowp);
			free(sl->Rp);
		}
	free(l->slots);
	for (size_t k = 0; k < l->nsh; k++)
		lvd_rec_close(l->sh[k].r);
	free(l->sh);
	free(l->perm[0]);
	free(l->perm[1]);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv_work);
	pthread_cond_destroy(&l->cv_ready);
	free(l);
}

/* ---- consumer ----------------------------------------------------------------------------- */

int lvd_loader_next(struct lvd_loader *l, struct lvd_loader_batch **out, struct lvd_error *err)
{
	*out = NULL;
	pthread_mutex_lock(&l->mu);
	int rc = 0;
	struct slot *sl = &l->slots[l->next_seq % (uint64_t)l->o.prefetch];
	if (l->failed) {
		rc = l->fail_rc;
		if (err)
			*err = l->fail_err;
	} else if (sl->state == SLOT_HELD) {
		rc = lvd_error_set(err, LVD_ERR_INVALID,
				   "loader: the batch of step %llu is still held (%d held; release batches in order, at "
				   "most prefetch = %d at once)",
				   (unsigned long long)sl->b.seq, l->held, l->o.prefetch);
	} else {
		while (!(sl->state == SLOT_READY && sl->b.seq == l->next_seq))
			pthread_cond_wait(&l->cv_ready, &l->mu);
		if (sl->rc) {
			l->failed = 1;
			l->fail_rc = rc = sl->rc;
			l->fail_err = sl->err;
			if (err)
				*err = sl->err;
		} else {
			sl->state = SLOT_HELD;
			l->held++;
			l->next_seq++;
			*out = &sl->b;
		}
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}

void lvd_loader_release(struct lvd_loader *l, struct lvd_loader_batch *b)
{
	if (!b)
		return;
	struct slot *sl = NULL;
	for (int k = 0; k < l->o.prefetch; k++)
		if (&l->slots[k].b == b)
			sl = &l->slots[k];
	LVD_ASSERTF(sl && sl->state == SLOT_HELD, "lvd_loader_release: not a held batch of this loader");
	slot_clear(l, sl); /* held: no producer touches it */
	pthread_mutex_lock(&l->mu);
	sl->state = SLOT_FREE;
	l->held--;
	pthread_cond_broadcast(&l->cv_work);
	pthread_mutex_unlock(&l->mu);
}

int lvd_loader_seek(struct lvd_loader *l, const struct lvd_loader_cursor *cursor, struct lvd_error *err)
{
	pthread_mutex_lock(&l->mu);
	if (l->held) {
		pthread_mutex_unlock(&l->mu);
		return lvd_error_set(err, LVD_ERR_INVALID, "loader: seek with %d batches still held", l->held);
	}
	l->pause = 1;
	l->gen++;
	while (l->in_flight)
		pthread_cond_wait(&l->cv_ready, &l->mu);
	for (int k = 0; k < l->o.prefetch; k++) {
		slot_clear(l, &l->slots[k]);
		l->slots[k].state = SLOT_FREE;
	}
	l->start = *cursor;
	l->claim_seq = 0;
	l->claim_active = 0;
	l->next_seq = 0;
	l->failed = 0;
	l->pause = 0;
	pthread_cond_broadcast(&l->cv_work);
	pthread_mutex_unlock(&l->mu);
	return 0;
}

int lvd_loader_step_counts(struct lvd_loader *l, uint64_t seq, int k, int64_t *label_tokens, int64_t *pairs,
			   struct lvd_error *err)
{
	*label_tokens = *pairs = 0;
	if (k < 0 || (uint64_t)k > ((uint64_t)1 << 40) / l->G)
		return lvd_error_set(err, LVD_ERR_INVALID, "loader: step counts over %d steps", k);
	size_t cap = (size_t)k * (size_t)l->G, n = 0;
	uint64_t *recs = lvd_alloc_array(cap ? cap : 1, sizeof *recs);
	if (!recs)
		return lvd_error_set(err, LVD_ERR_NOMEM, "loader: step counts");
	pthread_mutex_lock(&l->mu);
	for (int j = 0; j < k; j++) {
		uint64_t e, p;
		step_of(l, seq + (uint64_t)j, &e, &p);
		for (uint64_t q = p; q < p + l->G && q < l->N; q++)
			recs[n++] = order_at(l, e, q);
	}
	pthread_mutex_unlock(&l->mu);
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		const struct shard *sh = &l->sh[shard_of(l, recs[i])];
		const size_t ri = (size_t)(recs[i] - sh->first);
		char where[PATH_CAP + 1200];
		snprintf(where, sizeof where, "%s: record %zu ('%s')", lvd_rec_path(sh->r), ri, lvd_rec_id(sh->r, ri));
		void *buf = NULL;
		size_t len = 0;
		struct lvd_packrec rec = {0};
		rc = lvd_rec_read(sh->r, ri, &buf, &len, err);
		if (!rc)
			rc = lvd_packrec_decode(&rec, buf, len, where, err);
		free(buf);
		if (!rc) {
			for (uint32_t t = rec.flags & LVD_PACKREC_MCV ? 0 : 1; t < rec.T; t++)
				*label_tokens += rec.labels[t] != -100;
			*pairs += rec.W;
		}
		lvd_packrec_free(&rec);
	}
	free(recs);
	return rc;
}

void lvd_loader_batch_view(const struct lvd_loader_batch *b, struct lvd_mllama_batch *mb)
{
	memset(mb, 0, sizeof *mb);
	mb->B = b->B;
	mb->T = b->T;
	mb->M = 1;
	mb->input_ids = b->input_ids;
	mb->labels = b->labels;
	mb->pixel_values = b->pixel_values;
	mb->aspect_ratio_ids = b->aspect_ratio_ids;
	mb->aspect_ratio_mask = b->aspect_ratio_mask;
	mb->cross_attention_mask = b->cross_attention_mask;
	mb->cap_rows = b->cap_rows;
	mb->cap_off = b->cap_off;
}

void lvd_loader_batch_view_mcv(const struct lvd_loader_batch *b, struct lvd_minicpmv_batch *mb)
{
	memset(mb, 0, sizeof *mb);
	mb->B = b->B;
	mb->T = b->T;
	mb->input_ids = b->input_ids;
	mb->labels = b->labels;
	mb->NI = b->NI;
	mb->Lmax = b->Lmax;
	mb->pixel_values = b->strips;
	mb->tgt_sizes = b->tgt_sizes;
	mb->n_images = b->n_images;
	mb->image_bound = b->image_bound;
}

const char *lvd_loader_model_name(int kind)
{
	return kind == LVD_LOADER_MINICPMV ? "a MiniCPM-V (minicpmv)" : "an mllama";
}

int lvd_loader_model_kind(const char *model, int *kind, struct lvd_error *err)
{
	char path[PATH_CAP];
	snprintf(path, sizeof path, "%s/config.json", model);
	struct lvd_json j;
	const char *mt = NULL;
	int rc = lvd_json_load(&j, path, err);
	if (rc)
		return rc;
	rc = lvd_json_get_string_or(&j, "model_type", "", &mt, err);
	if (!rc && !strcmp(mt, "mllama"))
		*kind = LVD_LOADER_MLLAMA;
	else if (!rc && !strcmp(mt, "minicpmv"))
		*kind = LVD_LOADER_MINICPMV;
	else if (!rc)
		rc = lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: model_type '%s' (lvd-sft trains mllama and minicpmv)",
				   path, mt);
	lvd_json_release(&j);
	return rc;
}
