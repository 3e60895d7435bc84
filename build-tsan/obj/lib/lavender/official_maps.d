build-tsan/obj/lib/lavender/official_maps.o: lib/lavender/official_maps.c \
 lib/lavender/official_maps.h lib/core/error.h \
 lib/lavender/attnmap_sample.h lib/models/sd/sd.h lib/lavender/mapsrec.h \
 lib/lavender/attnmap.h lib/core/alloc.h lib/io/fileutil.h lib/io/image.h \
 lib/io/safetensors.h lib/text/clip_tok.h lib/text/tokens.h \
 lib/text/utf8.h
lib/lavender/official_maps.h:
lib/core/error.h:
lib/lavender/attnmap_sample.h:
lib/models/sd/sd.h:
lib/lavender/mapsrec.h:
lib/lavender/attnmap.h:
lib/core/alloc.h:
lib/io/fileutil.h:
lib/io/image.h:
lib/io/safetensors.h:
lib/text/clip_tok.h:
lib/text/tokens.h:
lib/text/utf8.h:
