/* lib/io/image.c — PNG (libpng) and JPEG (libturbojpeg) decoding to RGB8, PNG encoding.
 * The PIL-compatible conversions are documented in image.h. */
#include "io/image.h"

#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "io/fileutil.h"

static const char *nm(const char *name) { return name && *name ? name : "(image)"; }

void lvd_image_free(struct lvd_image *img)
{
	if (!img)
		return;
	free(img->px);
	memset(img, 0, sizeof *img);
}

static int check_dims(long w, long h, const char *name, struct lvd_error *err)
{
	if (w < 1 || h < 1)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: invalid image size %ldx%ld", nm(name), w, h);
	if (w > LVD_IMAGE_MAX_SIDE || h > LVD_IMAGE_MAX_SIDE || (size_t)w * (size_t)h > LVD_IMAGE_MAX_PIXELS)
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED,
				     "%s: image size %ldx%ld exceeds the limit (%d per side, %zu pixels)", nm(name),
				     w, h, LVD_IMAGE_MAX_SIDE, LVD_IMAGE_MAX_PIXELS);
	return LVD_OK;
}

/* A header's size against the bytes that could hold it (decompression-bomb guard): more
 * than max_ratio pixels per file byte cannot be real data (see LVD_IMAGE_PNG_RATIO). */
static int check_ratio(long w, long h, size_t len, uint64_t max_ratio, const char *what, const char *name,
		       struct lvd_error *err)
{
	if ((uint64_t)w * (uint64_t)h > max_ratio * (uint64_t)len)
		return lvd_error_set(err, LVD_ERR_FORMAT,
				     "%s: a %ldx%ld %s cannot be encoded in %zu bytes (more than %llu pixels per byte: "
				     "truncated or hostile)", nm(name), w, h, what, len, (unsigned long long)max_ratio);
	return LVD_OK;
}

int lvd_image_alloc(struct lvd_image *out, int w, int h, int c, struct lvd_error *err)
{
	memset(out, 0, sizeof *out);
	if (c < 1 || c > 4)
		return lvd_error_set(err, LVD_ERR_INVALID, "image: %d channels (want 1..4)", c);
	if (check_dims(w, h, "image", err))
		return lvd_error_set(err, LVD_ERR_INVALID, "image: invalid size %dx%d", w, h);
	size_t n;
	if (lvd_size_mul4(&n, (size_t)w, (size_t)h, (size_t)c, 1) || !(out->px = malloc(n)))
		return lvd_error_set(err, LVD_ERR_NOMEM, "image: out of memory for %dx%dx%d", w, h, c);
	out->w = w;
	out->h = h;
	out->c = c;
	return LVD_OK;
}

/* PIL's Image.alpha_composite of (s, a) over an opaque background b (see image.h). */
static inline uint8_t composite(unsigned s, unsigned a, unsigned b)
{
	if (a == 0)
		return (uint8_t)b;
	unsigned t = (s * a + b * (255 - a)) * 128 + (128u << 7);
	return (uint8_t)((((t >> 8) + t) >> 8) >> 7);
}

/* ---- PNG ----------------------------------------------------------------------- */

struct png_job {
	const uint8_t *data;
	size_t len, off;
	const char *name;
	enum lvd_alpha_bg bg;
	png_structp png;
	png_infop info;
	uint8_t *buf;          /* decoded rows as libpng delivers them */
	png_bytep *rows;
	char msg[256];         /* libpng's error message */
	struct lvd_image *out;
	int code;              /* error code to report when msg is set by us */
	int err_set;           /* err already holds the full message */
};

static void png_err_cb(png_structp png, png_const_charp msg)
{
	struct png_job *job = png_get_error_ptr(png);
	if (!job->msg[0])
		snprintf(job->msg, sizeof job->msg, "%s", msg);
	png_longjmp(png, 1);
}

static void png_warn_cb(png_structp png, png_const_charp msg)
{
	struct png_job *job = png_get_error_ptr(png);
	lvd_debug("%s: libpng warning: %s", nm(job->name), msg);
}

static void png_read_cb(png_structp png, png_bytep dst, size_t n)
{
	struct png_job *job = png_get_io_ptr(png);
	if (n > job->len - job->off)
		png_error(png, "unexpected end of data (file truncated)");
	memcpy(dst, job->data + job->off, n);
	job->off += n;
}

/* Runs libpng; every object it creates hangs off `job` so the caller can free it
 * whatever happens (no locals live across the setjmp). Returns 0 or an error code. */
static int png_decode_inner(struct png_job *job, struct lvd_error *err)
{
	if (setjmp(png_jmpbuf(job->png)))
		return job->code ? job->code : LVD_ERR_FORMAT;
	png_set_user_limits(job->png, LVD_IMAGE_MAX_SIDE, LVD_IMAGE_MAX_SIDE);
	png_set_read_fn(job->png, job, png_read_cb);
	png_read_info(job->png, job->info);
	png_uint_32 w, h;
	int depth, ctype, interlace;
	png_get_IHDR(job->png, job->info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
	if ((job->code = check_dims((long)w, (long)h, job->name, err)) ||
	    (job->code = check_ratio((long)w, (long)h, job->len, LVD_IMAGE_PNG_RATIO, "PNG", job->name, err))) {
		job->err_set = 1;
		return job->code;
	}
	int has_trns = png_get_valid(job->png, job->info, PNG_INFO_tRNS) != 0;
	int want_alpha = job->bg != LVD_ALPHA_DROP;
	int gray16 = depth == 16 && ctype == PNG_COLOR_TYPE_GRAY;
	if (ctype == PNG_COLOR_TYPE_PALETTE)
		png_set_palette_to_rgb(job->png);
	if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
		png_set_expand_gray_1_2_4_to_8(job->png);
	if (has_trns && want_alpha && depth <= 8 && ctype != PNG_COLOR_TYPE_GRAY_ALPHA &&
	    ctype != PNG_COLOR_TYPE_RGB_ALPHA)
		png_set_tRNS_to_alpha(job->png);
	if (depth == 16 && !gray16)
		png_set_strip_16(job->png); /* high byte, as PIL's ;16B raw modes */
	png_set_interlace_handling(job->png);
	png_read_update_info(job->png, job->info);
	int ch = png_get_channels(job->png, job->info);
	size_t rowbytes = png_get_rowbytes(job->png, job->info);
	if (ch < 1 || ch > 4 || rowbytes != (size_t)w * ch * (gray16 ? 2 : 1))
		png_error(job->png, "unexpected row layout after transformations");
	job->buf = lvd_alloc_array(rowbytes, h);
	job->rows = lvd_alloc_array(h, sizeof *job->rows);
	if (!job->buf || !job->rows) {
		job->code = LVD_ERR_NOMEM;
		png_error(job->png, "out of memory");
	}
	for (png_uint_32 y = 0; y < h; y++)
		job->rows[y] = job->buf + (size_t)y * rowbytes;
	png_read_image(job->png, job->rows);
	png_read_end(job->png, NULL);

	if (lvd_image_alloc(job->out, (int)w, (int)h, 3, NULL)) {
		job->code = LVD_ERR_NOMEM;
		png_error(job->png, "out of memory");
	}
	unsigned bgv = job->bg == LVD_ALPHA_WHITE ? 255 : 0;
	size_t n = (size_t)w * h;
	const uint8_t *s = job->buf;
	uint8_t *d = job->out->px;
	for (size_t i = 0; i < n; i++, d += 3) {
		unsigned r, g, b, a = 255;
		switch (ch) {
		case 1:
			if (gray16) {
				unsigned v = (unsigned)s[0] << 8 | s[1];
				r = g = b = v > 255 ? 255 : v; /* PIL's I;16 -> L clips */
				s += 2;
			} else {
				r = g = b = *s++;
			}
			break;
		case 2:
			r = g = b = s[0];
			a = s[1];
			s += 2;
			break;
		case 3:
			r = s[0], g = s[1], b = s[2];
			s += 3;
			break;
		default:
			r = s[0], g = s[1], b = s[2], a = s[3];
			s += 4;
			break;
		}
		if (want_alpha && a != 255) {
			r = composite(r, a, bgv);
			g = composite(g, a, bgv);
			b = composite(b, a, bgv);
		}
		d[0] = (uint8_t)r, d[1] = (uint8_t)g, d[2] = (uint8_t)b;
	}
	return LVD_OK;
}

static int png_decode(struct lvd_image *out, const void *data, size_t len, enum lvd_alpha_bg bg,
		      const char *name, struct lvd_error *err)
{
	struct png_job job = {.data = data, .len = len, .name = name, .bg = bg, .out = out};
	job.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, png_err_cb, png_warn_cb);
	if (!job.png || !(job.info = png_create_info_struct(job.png))) {
		png_destroy_read_struct(job.png ? &job.png : NULL, NULL, NULL);
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory (libpng)", nm(name));
	}
	int rc = png_decode_inner(&job, err);
	png_destroy_read_struct(&job.png, &job.info, NULL);
	free(job.buf);
	free(job.rows);
	if (rc) {
		lvd_image_free(out);
		if (job.err_set)
			return rc;
		return lvd_error_set(err, rc, "%s: %s PNG: %s", nm(name),
				     rc == LVD_ERR_FORMAT ? "corrupt or truncated" : "cannot decode",
				     job.msg[0] ? job.msg : "unknown libpng error");
	}
	return LVD_OK;
}

/* ---- JPEG ---------------------------------------------------------------------- */

/* PIL's MULDIV255: round(a * b / 255) computed with shifts. */
static inline unsigned muldiv255(unsigned a, unsigned b)
{
	unsigned t = a * b + 128;
	return ((t >> 8) + t) >> 8;
}

static int jpeg_decode(struct lvd_image *out, const void *data, size_t len, const char *name,
		       struct lvd_error *err)
{
	if (len > (size_t)0xffffffffu)
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED, "%s: JPEG larger than 4 GiB", nm(name));
	tjhandle tj = tjInitDecompress();
	if (!tj)
		return lvd_error_set(err, LVD_ERR_NOMEM, "%s: cannot start the JPEG decoder: %s", nm(name),
				     tjGetErrorStr2(NULL));
	int rc = LVD_OK, w = 0, h = 0, subsamp = 0, cs = -1;
	uint8_t *cmyk = NULL;
	unsigned char *buf = (unsigned char *)data;  /* turbojpeg 2.x takes non-const */
	if (tjDecompressHeader3(tj, buf, (unsigned long)len, &w, &h, &subsamp, &cs)) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: corrupt JPEG header: %s", nm(name), tjGetErrorStr2(tj));
		goto done;
	}
	/* "FF D8 FF D9" (no SOF marker) passes the header call without setting the sizes */
	if (w <= 0 || h <= 0) {
		rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: corrupt JPEG header: no frame (SOF) marker", nm(name));
		goto done;
	}
	if ((rc = check_dims(w, h, name, err)) ||
	    (rc = check_ratio(w, h, len, LVD_IMAGE_JPEG_RATIO, "JPEG", name, err)))
		goto done;
	int is_cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
	if ((rc = lvd_image_alloc(out, w, h, 3, err)))
		goto done;
	if (is_cmyk && !(cmyk = lvd_alloc_array((size_t)w * h, 4))) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "%s: out of memory", nm(name));
		goto done;
	}
	int flags = TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS;
	int r = is_cmyk ? tjDecompress2(tj, buf, (unsigned long)len, cmyk, w, w * 4, h, TJPF_CMYK, flags)
			: tjDecompress2(tj, buf, (unsigned long)len, out->px, w, w * 3, h, TJPF_RGB, flags);
	if (r) {
		const char *msg = tjGetErrorStr2(tj);
		if (tjGetErrorCode(tj) != TJERR_WARNING || strstr(msg, "Premature end")) {
			rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s: corrupt or truncated JPEG: %s", nm(name), msg);
			goto done;
		}
		lvd_debug("%s: libjpeg warning: %s", nm(name), msg);
	}
	if (is_cmyk) {
		/* file values are Adobe-inverted: ink c = 255 - stored; PIL's cmyk2rgb */
		size_t n = (size_t)w * h;
		for (size_t i = 0; i < n; i++) {
			const uint8_t *p = cmyk + 4 * i;
			unsigned nk = p[3]; /* 255 - k */
			for (int c = 0; c < 3; c++)
				out->px[3 * i + c] = (uint8_t)(nk - muldiv255(255u - p[c], nk));
		}
	}
done:
	if (rc)
		lvd_image_free(out);
	free(cmyk);
	tjDestroy(tj);
	return rc;
}

/* ---- entry points -------------------------------------------------------------- */

int lvd_image_decode(struct lvd_image *out, const void *data, size_t len, enum lvd_alpha_bg bg,
		     const char *name, struct lvd_error *err)
{
	static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	memset(out, 0, sizeof *out);
	if (bg != LVD_ALPHA_BLACK && bg != LVD_ALPHA_WHITE && bg != LVD_ALPHA_DROP)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: invalid alpha mode %d", nm(name), (int)bg);
	const uint8_t *p = data;
	if (len == 0)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: empty file, not a PNG or JPEG file", nm(name));
	if (len >= 8 && memcmp(p, png_magic, 8) == 0)
		return png_decode(out, data, len, bg, name, err);
	if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
		return jpeg_decode(out, data, len, name, err);
	return lvd_error_set(err, LVD_ERR_FORMAT, "%s: not a PNG or JPEG file", nm(name));
}

int lvd_image_load(struct lvd_image *out, const char *path, enum lvd_alpha_bg bg, struct lvd_error *err)
{
	memset(out, 0, sizeof *out);
	char *buf = NULL;
	size_t len = 0;
	int rc = lvd_file_read_regular(path, LVD_IMAGE_MAX_FILE, &buf, &len, err);
	if (rc)
		return rc;
	rc = lvd_image_decode(out, buf, len, bg, path, err);
	free(buf);
	return rc;
}

struct png_membuf {
	uint8_t *p;
	size_t len, cap;
	int oom;
};

static void png_write_cb(png_structp png, png_bytep src, size_t n)
{
	struct png_membuf *m = png_get_io_ptr(png);
	if (m->oom)
		return;
	if (n > m->cap - m->len) {
		size_t ncap = m->cap ? m->cap : 4096;
		while (ncap - m->len < n && ncap < ((size_t)-1) / 2)
			ncap *= 2;
		uint8_t *np = ncap - m->len >= n ? realloc(m->p, ncap) : NULL;
		if (!np) {
			m->oom = 1;
			png_error(png, "out of memory");
		}
		m->p = np;
		m->cap = ncap;
	}
	memcpy(m->p + m->len, src, n);
	m->len += n;
}

static void png_flush_cb(png_structp png) { (void)png; }

struct png_wjob {
	const struct lvd_image *img;
	png_structp png;
	png_infop info;
	png_bytep *rows;
	struct png_membuf mem;
	char msg[256];
};

static void png_werr_cb(png_structp png, png_const_charp msg)
{
	struct png_wjob *job = png_get_error_ptr(png);
	if (!job->msg[0])
		snprintf(job->msg, sizeof job->msg, "%s", msg);
	png_longjmp(png, 1);
}

static int png_encode_inner(struct png_wjob *job)
{
	if (setjmp(png_jmpbuf(job->png)))
		return -1;
	const struct lvd_image *img = job->img;
	png_set_write_fn(job->png, &job->mem, png_write_cb, png_flush_cb);
	png_set_IHDR(job->png, job->info, (png_uint_32)img->w, (png_uint_32)img->h, 8,
		     img->c == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
		     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_set_compression_level(job->png, 6);
	job->rows = lvd_alloc_array((size_t)img->h, sizeof *job->rows);
	if (!job->rows)
		png_error(job->png, "out of memory");
	for (int y = 0; y < img->h; y++)
		job->rows[y] = img->px + (size_t)y * img->w * img->c;
	png_set_rows(job->png, job->info, job->rows);
	png_write_png(job->png, job->info, PNG_TRANSFORM_IDENTITY, NULL);
	return 0;
}

int lvd_image_encode_png(const struct lvd_image *img, uint8_t **out, size_t *out_len, struct lvd_error *err)
{
	*out = NULL;
	*out_len = 0;
	if (!img || !img->px || (img->c != 1 && img->c != 3) || img->w < 1 || img->h < 1 ||
	    img->w > LVD_IMAGE_MAX_SIDE || img->h > LVD_IMAGE_MAX_SIDE)
		return lvd_error_set(err, LVD_ERR_INVALID, "PNG encode: need an RGB8 or gray8 image with valid size");
	struct png_wjob job = {.img = img};
	job.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &job, png_werr_cb, NULL);
	if (!job.png || !(job.info = png_create_info_struct(job.png))) {
		png_destroy_write_struct(job.png ? &job.png : NULL, NULL);
		return lvd_error_set(err, LVD_ERR_NOMEM, "PNG encode: out of memory (libpng)");
	}
	int rc = png_encode_inner(&job);
	png_destroy_write_struct(&job.png, &job.info);
	free(job.rows);
	if (rc) {
		free(job.mem.p);
		return lvd_error_set(err, job.mem.oom ? LVD_ERR_NOMEM : LVD_ERR_INVALID, "PNG encode: %s",
				     job.msg[0] ? job.msg : "libpng error");
	}
	*out = job.mem.p;
	*out_len = job.mem.len;
	return LVD_OK;
}

int lvd_image_save_png(const struct lvd_image *img, const char *path, struct lvd_error *err)
{
	uint8_t *buf;
	size_t len;
	int rc = lvd_image_encode_png(img, &buf, &len, err);
	if (rc)
		return lvd_error_prefix(err, "%s: ", path);
	rc = lvd_file_write_atomic(path, buf, len, err);
	free(buf);
	return rc;
}
