build-tsan/obj/lib/lavender/latt.o: lib/lavender/latt.c \
 lib/lavender/latt.h lib/core/error.h lib/lavender/aligner.h \
 lib/core/alloc.h lib/io/safetensors.h lib/lavender/geometry.h \
 lib/lavender/packrec.h lib/nn/ctx.h lib/core/pool.h \
 lib/nn/ops/resample.h
lib/lavender/latt.h:
lib/core/error.h:
lib/lavender/aligner.h:
lib/core/alloc.h:
lib/io/safetensors.h:
lib/lavender/geometry.h:
lib/lavender/packrec.h:
lib/nn/ctx.h:
lib/core/pool.h:
lib/nn/ops/resample.h:
