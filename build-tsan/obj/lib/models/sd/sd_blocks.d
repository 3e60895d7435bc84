build-tsan/obj/lib/models/sd/sd_blocks.o: lib/models/sd/sd_blocks.c \
 lib/core/error.h lib/models/sd/sd_internal.h lib/core/clock.h \
 lib/models/sd/sd.h lib/nn/ctx.h lib/core/pool.h lib/nn/ops/conv.h \
 lib/nn/ops/elem.h lib/nn/ops/gemm.h lib/nn/ops/norm.h
lib/core/error.h:
lib/models/sd/sd_internal.h:
lib/core/clock.h:
lib/models/sd/sd.h:
lib/nn/ctx.h:
lib/core/pool.h:
lib/nn/ops/conv.h:
lib/nn/ops/elem.h:
lib/nn/ops/gemm.h:
lib/nn/ops/norm.h:
