build-tsan/obj/lib/lavender/geometry.o: lib/lavender/geometry.c \
 lib/lavender/geometry.h lib/core/error.h lib/core/alloc.h lib/io/json.h \
 lib/models/mllama/mllama.h lib/nn/ctx.h lib/core/pool.h
lib/lavender/geometry.h:
lib/core/error.h:
lib/core/alloc.h:
lib/io/json.h:
lib/models/mllama/mllama.h:
lib/nn/ctx.h:
lib/core/pool.h:
