build-tsan/obj/lib/lavender/aligner.o: lib/lavender/aligner.c \
 lib/lavender/aligner.h lib/core/error.h lib/nn/ctx.h lib/core/pool.h \
 lib/nn/ops/conv.h lib/nn/ops/act.h lib/nn/ops/instnorm.h
lib/lavender/aligner.h:
lib/core/error.h:
lib/nn/ctx.h:
lib/core/pool.h:
lib/nn/ops/conv.h:
lib/nn/ops/act.h:
lib/nn/ops/instnorm.h:
