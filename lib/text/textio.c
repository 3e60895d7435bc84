#include "text/textio.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "io/fileutil.h"

int lvd_text_read_file(const char *path, char **data, size_t *len, struct lvd_error *err)
{
	char *buf;
	size_t n;
	int rc = lvd_file_read_all(path, LVD_TEXT_MAX_BYTES, &buf, &n, err);
	if (rc)
		return rc;
	size_t pl = strlen(path);
	int named_gz = pl > 3 && !strcmp(path + pl - 3, ".gz");
	int is_gz = n >= 2 && (unsigned char)buf[0] == 0x1f && (unsigned char)buf[1] == 0x8b;
	if (named_gz && !is_gz) {
		free(buf);
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: named .gz but not gzip data (no 1f 8b magic)", path);
	}
	if (is_gz) {
		rc = lvd_gunzip((const unsigned char *)buf, n, data, len, err);
		free(buf);
		return rc ? lvd_error_prefix(err, "%s: ", path) : 0;
	}
	*data = buf;
	*len = n;
	return 0;
}

int lvd_text_next_line(const char *data, size_t len, size_t *pos, const char **line, size_t *n)
{
	size_t p = *pos, e = p;
	if (p >= len)
		return 0;
	while (e < len && data[e] != '\n')
		e++;
	size_t le = e;
	if (le > p && data[le - 1] == '\r')
		le--;
	*line = data + p;
	*n = le - p;
	*pos = e + 1;
	return 1;
}

/* ---- inflate (RFC 1951), written from the format description ---------------- */
struct inf {
	const unsigned char *in;
	size_t n, pos;
	uint32_t bitbuf;
	int bitcnt;
	unsigned char *out;
	size_t olen, ocap;
	int too_big;    /* put() refused: the output reached LVD_TEXT_MAX_BYTES */
};

struct huff {
	short count[16];
	short symbol[320];
};

static int bits(struct inf *s, int need, uint32_t *v)
{
	uint32_t val = s->bitbuf;
	while (s->bitcnt < need) {
		if (s->pos >= s->n)
			return -1;
		val |= (uint32_t)s->in[s->pos++] << s->bitcnt;
		s->bitcnt += 8;
	}
	s->bitbuf = val >> need;
	s->bitcnt -= need;
	*v = val & ((1u << need) - 1);
	return 0;
}

static int put(struct inf *s, unsigned char c)
{
	if (s->olen >= LVD_TEXT_MAX_BYTES) {
		s->too_big = 1;
		return -2;
	}
	if (s->olen == s->ocap) {
		size_t nc = s->ocap ? s->ocap * 2 : 1 << 16;
		unsigned char *p = nc > s->ocap ? realloc(s->out, nc + 1) : NULL;
		if (!p)
			return -2;
		s->out = p;
		s->ocap = nc;
	}
	s->out[s->olen++] = c;
	return 0;
}

static int decode_sym(struct inf *s, const struct huff *h)
{
	int code = 0, first = 0, index = 0;
	for (int len = 1; len <= 15; len++) {
		uint32_t b;
		if (bits(s, 1, &b))
			return -1;
		code |= (int)b;
		int count = h->count[len];
		if (code - count < first)
			return h->symbol[index + (code - first)];
		index += count;
		first += count;
		first <<= 1;
		code <<= 1;
	}
	return -1;
}

static int build(struct huff *h, const short *length, int n)
{
	short offs[16];
	memset(h->count, 0, sizeof h->count);
	for (int i = 0; i < n; i++)
		h->count[length[i]]++;
	if (h->count[0] == n)
		return 0;
	int left = 1;
	for (int len = 1; len <= 15; len++) {
		left <<= 1;
		left -= h->count[len];
		if (left < 0)
			return -1;
	}
	offs[1] = 0;
	for (int len = 1; len < 15; len++)
		offs[len + 1] = (short)(offs[len] + h->count[len]);
	for (int i = 0; i < n; i++)
		if (length[i])
			h->symbol[offs[length[i]]++] = (short)i;
	return left;
}

static const short LBASE[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const short LEXT[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const short DBASE[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const short DEXT[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static int codes(struct inf *s, const struct huff *lc, const struct huff *dc)
{
	for (;;) {
		int sym = decode_sym(s, lc);
		if (sym < 0)
			return -1;
		if (sym < 256) {
			if (put(s, (unsigned char)sym))
				return -2;
		} else if (sym == 256) {
			return 0;
		} else {
			sym -= 257;
			if (sym >= 29)
				return -1;
			uint32_t e;
			if (bits(s, LEXT[sym], &e))
				return -1;
			size_t len = (size_t)LBASE[sym] + e;
			int ds = decode_sym(s, dc);
			if (ds < 0 || ds >= 30)
				return -1;
			if (bits(s, DEXT[ds], &e))
				return -1;
			size_t dist = (size_t)DBASE[ds] + e;
			if (dist > s->olen)
				return -1;
			while (len--)
				if (put(s, s->out[s->olen - dist]))
					return -2;
		}
	}
}

static int inflate_raw(struct inf *s)
{
	uint32_t last, type;
	do {
		if (bits(s, 1, &last) || bits(s, 2, &type))
			return -1;
		if (type == 0) {
			s->bitbuf = 0;
			s->bitcnt = 0;
			if (s->pos + 4 > s->n)
				return -1;
			unsigned len = s->in[s->pos] | (unsigned)s->in[s->pos + 1] << 8;
			unsigned nlen = s->in[s->pos + 2] | (unsigned)s->in[s->pos + 3] << 8;
			s->pos += 4;
			if (len != (~nlen & 0xffffu) || s->pos + len > s->n)
				return -1;
			for (unsigned i = 0; i < len; i++)
				if (put(s, s->in[s->pos++]))
					return -2;
		} else if (type == 1) {
			short l[288 + 30];
			struct huff lc, dc;
			for (int i = 0; i < 144; i++) l[i] = 8;
			for (int i = 144; i < 256; i++) l[i] = 9;
			for (int i = 256; i < 280; i++) l[i] = 7;
			for (int i = 280; i < 288; i++) l[i] = 8;
			for (int i = 0; i < 30; i++) l[288 + i] = 5;
			build(&lc, l, 288);
			build(&dc, l + 288, 30);
			int rc = codes(s, &lc, &dc);
			if (rc)
				return rc;
		} else if (type == 2) {
			static const short order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
			uint32_t nlen, ndist, ncode;
			if (bits(s, 5, &nlen) || bits(s, 5, &ndist) || bits(s, 4, &ncode))
				return -1;
			nlen += 257;
			ndist += 1;
			ncode += 4;
			if (nlen > 286 || ndist > 30)
				return -1;
			short lengths[320];
			memset(lengths, 0, sizeof lengths);
			for (uint32_t i = 0; i < ncode; i++) {
				uint32_t v;
				if (bits(s, 3, &v))
					return -1;
				lengths[order[i]] = (short)v;
			}
			struct huff lc, dc;
			if (build(&lc, lengths, 19) != 0)
				return -1;
			uint32_t idx = 0;
			while (idx < nlen + ndist) {
				int sym = decode_sym(s, &lc);
				if (sym < 0)
					return -1;
				if (sym < 16) {
					lengths[idx++] = (short)sym;
					continue;
				}
				short len = 0;
				uint32_t rep;
				if (sym == 16) {
					if (idx == 0)
						return -1;
					len = lengths[idx - 1];
					if (bits(s, 2, &rep))
						return -1;
					rep += 3;
				} else if (sym == 17) {
					if (bits(s, 3, &rep))
						return -1;
					rep += 3;
				} else {
					if (bits(s, 7, &rep))
						return -1;
					rep += 11;
				}
				if (idx + rep > nlen + ndist)
					return -1;
				while (rep--)
					lengths[idx++] = len;
			}
			if (lengths[256] == 0)
				return -1;
			int e1 = build(&lc, lengths, (int)nlen);
			if (e1 < 0 || (e1 > 0 && nlen - lc.count[0] != 1))
				return -1;
			int e2 = build(&dc, lengths + nlen, (int)ndist);
			if (e2 < 0 || (e2 > 0 && ndist - dc.count[0] != 1))
				return -1;
			int rc = codes(s, &lc, &dc);
			if (rc)
				return rc;
		} else {
			return -1;
		}
	} while (!last);
	return 0;
}

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
	}
	return ~c;
}

int lvd_gunzip(const unsigned char *in, size_t n, char **out, size_t *out_len, struct lvd_error *err)
{
	struct inf s = {0};
	s.in = in;
	s.n = n;
	*out = NULL;
	*out_len = 0;
	while (s.pos < n) {
		size_t p = s.pos;
		if (p + 10 > n || in[p] != 0x1f || in[p + 1] != 0x8b || in[p + 2] != 8) {
			free(s.out);
			return lvd_error_set(err, LVD_ERR_FORMAT, "not a gzip (deflate) stream at byte %zu", p);
		}
		unsigned flg = in[p + 3];
		p += 10;
		if (flg & 4) {
			if (p + 2 > n)
				goto bad;
			p += 2 + (in[p] | (size_t)in[p + 1] << 8);
		}
		if (flg & 8) {
			while (p < n && in[p])
				p++;
			p++;
		}
		if (flg & 16) {
			while (p < n && in[p])
				p++;
			p++;
		}
		if (flg & 2)
			p += 2;
		if (p > n)
			goto bad;
		s.pos = p;
		s.bitbuf = 0;
		s.bitcnt = 0;
		size_t start = s.olen;
		int rc = inflate_raw(&s);
		if (rc == -2 && s.too_big) {
			free(s.out);
			return lvd_error_set(err, LVD_ERR_INVALID, "gzip data inflates to more than %d MiB (the limit "
					     "for a text file)", LVD_TEXT_MAX_BYTES >> 20);
		}
		if (rc == -2) {
			free(s.out);
			return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory inflating");
		}
		if (rc)
			goto bad;
		if (s.pos + 8 > n)
			goto bad;
		uint32_t crc = in[s.pos] | (uint32_t)in[s.pos + 1] << 8 | (uint32_t)in[s.pos + 2] << 16 |
			       (uint32_t)in[s.pos + 3] << 24;
		/* an empty member leaves s.out NULL: no pointer arithmetic on it */
		if (crc != crc32_of(s.olen > start ? s.out + start : (const unsigned char *)"", s.olen - start)) {
			free(s.out);
			return lvd_error_set(err, LVD_ERR_FORMAT, "gzip CRC mismatch");
		}
		s.pos += 8;
	}
	if (!s.out && !(s.out = malloc(1)))
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	s.out[s.olen] = 0;
	*out = (char *)s.out;
	*out_len = s.olen;
	return 0;
bad:
	free(s.out);
	return lvd_error_set(err, LVD_ERR_FORMAT, "corrupt or truncated gzip data");
}
