build-tsan/obj/lib/models/sd/unet.o: lib/models/sd/unet.c \
 lib/models/sd/sd_internal.h lib/core/clock.h lib/models/sd/sd.h \
 lib/core/error.h lib/nn/ctx.h lib/core/pool.h lib/nn/ops/act.h \
 lib/nn/ops/attention.h lib/nn/ops/elem.h lib/nn/ops/embed.h \
 lib/nn/ops/gemm.h lib/nn/ops/resample.h
lib/models/sd/sd_internal.h:
lib/core/clock.h:
lib/models/sd/sd.h:
lib/core/error.h:
lib/nn/ctx.h:
lib/core/pool.h:
lib/nn/ops/act.h:
lib/nn/ops/attention.h:
lib/nn/ops/elem.h:
lib/nn/ops/embed.h:
lib/nn/ops/gemm.h:
lib/nn/ops/resample.h:
