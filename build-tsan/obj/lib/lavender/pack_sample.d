build-tsan/obj/lib/lavender/pack_sample.o: lib/lavender/pack_sample.c \
 lib/lavender/pack_sample.h lib/core/error.h lib/io/manifest.h \
 lib/lavender/geometry.h lib/lavender/mapsrec.h lib/lavender/attnmap.h \
 lib/lavender/match.h lib/text/chat.h lib/text/llama_tok.h \
 lib/text/tokens.h lib/core/alloc.h lib/io/image.h lib/io/safetensors.h \
 lib/lavender/packrec.h
lib/lavender/pack_sample.h:
lib/core/error.h:
lib/io/manifest.h:
lib/lavender/geometry.h:
lib/lavender/mapsrec.h:
lib/lavender/attnmap.h:
lib/lavender/match.h:
lib/text/chat.h:
lib/text/llama_tok.h:
lib/text/tokens.h:
lib/core/alloc.h:
lib/io/image.h:
lib/io/safetensors.h:
lib/lavender/packrec.h:
