/* lib/io/container.h — the record container behind .lvdm (attention maps) and .lvdp
 * (packed training data) shards.
 *
 * A shard holds a JSON provenance header and a sequence of named records (opaque
 * bytes, each one zstd frame with its content checksum), followed by an index and a
 * fixed footer. The full byte layout is in docs/FORMATS.md; in short (all integers
 * little-endian, written field by field):
 *
 *   0        8  magic 89 4C 56 44 0D 0A 1A 0A ("\x89LVD\r\n\x1a\n")
 *   8        4  kind, 4 ASCII bytes: "LVDM" maps, "LVDP" pack (any 4 printable ASCII)
 *   12       4  u32 version = 1
 *   16       4  u32 H = header length (<= 16 MiB)
 *   20       4  u32 CRC-32C of the header bytes
 *   24       H  header: one JSON object, UTF-8 (tool, version, options, input hashes)
 *   24+H     .  records: zstd frames back to back, in append order
 *   I        L  index: u64 count, then per record: u16 id length n (1..1024), n bytes
 *               of id (UTF-8, no control characters), u64 offset, u64 compressed
 *               length, u64 raw length
 *   end-32  32  footer: u64 I, u64 L, u32 CRC-32C of the index, u32 CRC-32C of the
 *               footer's first 20 bytes, 8 bytes "LVDFOOT\n"
 *
 * Records tile [24+H, I) exactly, in index order. Identical inputs give byte-identical
 * files (no timestamps; zstd single-threaded; the header JSON is stored verbatim).
 *
 * Writers write path.tmp and rename it to path on close, so a shard under its final
 * name is always complete. Readers check magic, kind, version, header CRC and JSON,
 * footer magic and CRC, index CRC, every offset and length against the file, and
 * record-id uniqueness before trusting anything; each record read checks the frame
 * (single frame, checksum flag, content size = raw length) and zstd verifies the
 * content checksum. Messages name the shard and record:
 *   "maps/attn-00003.lvdm: record 17 ('coco_123'): zstd: checksum mismatch". */
#ifndef LVD_IO_CONTAINER_H
#define LVD_IO_CONTAINER_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LVD_REC_KIND_MAPS "LVDM"
#define LVD_REC_KIND_PACK "LVDP"
#define LVD_REC_VERSION 1u
#define LVD_REC_ID_MAX 1024                       /* bytes */
#define LVD_REC_HEADER_MAX ((size_t)16 << 20)     /* 16 MiB */
#define LVD_REC_RAW_MAX ((uint64_t)2 << 30)       /* 2 GiB per record */
#define LVD_REC_PREFIX_LEN 24                     /* bytes before the header JSON */
#define LVD_REC_FOOTER_LEN 32

/* --- writer -------------------------------------------------------------------- */

struct lvd_rec_writer;

struct lvd_rec_writer_opts {
	int level; /* zstd level 1..19; 0 -> 3 */
};

/* Starts a shard: creates path.tmp (truncating a stale one) and writes the prefix and
 * header. kind is exactly 4 printable ASCII characters (LVD_REC_KIND_*); header_json
 * must be a JSON object (stored byte for byte, so pass a deterministic dump). opts may
 * be NULL. Errors: LVD_ERR_INVALID (kind, header), LVD_ERR_IO, LVD_ERR_NOMEM. */
int lvd_rec_writer_open(struct lvd_rec_writer **out, const char *path, const char *kind,
			const char *header_json, const struct lvd_rec_writer_opts *opts,
			struct lvd_error *err);

/* Compresses data[0..len) into a new record named id. The id must be 1..1024 bytes of
 * UTF-8 without control characters and unique within the shard; len <= 2 GiB.
 * LVD_ERR_INVALID for a bad or duplicate id or size (nothing written; the writer stays
 * usable), LVD_ERR_IO/NOMEM otherwise (the writer is then failed: later appends and
 * close return an error; call abort). */
int lvd_rec_writer_append(struct lvd_rec_writer *w, const char *id, const void *data,
			  size_t len, struct lvd_error *err);

/* Records appended so far. */
size_t lvd_rec_writer_count(const struct lvd_rec_writer *w);
/* Compressed bytes of the records appended so far (prefix, header, index and footer not
 * counted). */
uint64_t lvd_rec_writer_bytes(const struct lvd_rec_writer *w);

/* Writes index and footer, fsyncs, renames path.tmp to path. Frees w in every case;
 * on error path.tmp is removed and path is untouched. */
int lvd_rec_writer_close(struct lvd_rec_writer *w, struct lvd_error *err);

/* Discards the shard: removes path.tmp and frees w. NULL is a no-op. */
void lvd_rec_writer_abort(struct lvd_rec_writer *w);

/* --- reader -------------------------------------------------------------------- */

struct lvd_rec_reader;

/* Opens and validates a shard (see above). kind: the expected 4-character kind, or NULL
 * to accept any. Errors: LVD_ERR_IO (open/read), LVD_ERR_FORMAT (anything malformed,
 * message names the field), LVD_ERR_UNSUPPORTED (newer version), LVD_ERR_INVALID
 * (wrong kind), LVD_ERR_NOMEM. */
int lvd_rec_open(struct lvd_rec_reader **out, const char *path, const char *kind,
		 struct lvd_error *err);

void lvd_rec_close(struct lvd_rec_reader *r);

const char *lvd_rec_path(const struct lvd_rec_reader *r);
/* The 4 kind characters, NUL-terminated. */
const char *lvd_rec_kind(const struct lvd_rec_reader *r);
/* The header JSON (NUL-terminated, *len its length; len may be NULL). Borrowed. */
const char *lvd_rec_header(const struct lvd_rec_reader *r, size_t *len);
size_t lvd_rec_count(const struct lvd_rec_reader *r);
/* Id of record i < count (NUL-terminated, borrowed until close). */
const char *lvd_rec_id(const struct lvd_rec_reader *r, size_t i);
/* Raw (decompressed) and stored sizes of record i. */
uint64_t lvd_rec_raw_size(const struct lvd_rec_reader *r, size_t i);
uint64_t lvd_rec_stored_size(const struct lvd_rec_reader *r, size_t i);

/* Checks that the id a record's payload carries (payload_id, from its decoder) is the id
 * the index gives record i: LVD_ERR_FORMAT "WHERE: the index names the record 'A' but
 * its payload says 'B'" otherwise (an internally inconsistent shard). */
int lvd_rec_check_id(const struct lvd_rec_reader *r, size_t i, const char *payload_id, const char *where,
		     struct lvd_error *err);

/* Index of the record named id in *index; LVD_ERR_NOTFOUND (err filled) if absent.
 * O(log n) through a sorted copy built at open. */
int lvd_rec_find(const struct lvd_rec_reader *r, const char *id, size_t *index,
		 struct lvd_error *err);

/* Reads and decompresses record i < count into a new malloc'd buffer (*buf, *len; one
 * extra NUL byte after the data, so text records can be used as strings). Caller frees
 * *buf. Thread-safe: several threads may read from one reader at once. Errors:
 * LVD_ERR_FORMAT (bad frame, checksum mismatch, size mismatch), LVD_ERR_IO,
 * LVD_ERR_NOMEM. */
int lvd_rec_read(const struct lvd_rec_reader *r, size_t i, void **buf, size_t *len,
		 struct lvd_error *err);

#ifdef __cplusplus
}
#endif
#endif
