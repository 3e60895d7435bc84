build-tsan/obj/lib/lavender/lstep.o: lib/lavender/lstep.c \
 lib/lavender/lstep.h lib/core/error.h lib/lavender/latt.h \
 lib/lavender/aligner.h lib/models/mllama/mllama.h lib/nn/ctx.h \
 lib/core/pool.h lib/core/alloc.h lib/lavender/packrec.h
lib/lavender/lstep.h:
lib/core/error.h:
lib/lavender/latt.h:
lib/lavender/aligner.h:
lib/models/mllama/mllama.h:
lib/nn/ctx.h:
lib/core/pool.h:
lib/core/alloc.h:
lib/lavender/packrec.h:
