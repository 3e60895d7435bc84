build-tsan/obj/lib/models/sd/vae.o: lib/models/sd/vae.c \
 lib/models/sd/sd_internal.h lib/core/clock.h lib/models/sd/sd.h \
 lib/core/error.h lib/nn/ctx.h lib/core/pool.h lib/nn/ops/attention.h \
 lib/nn/ops/conv.h lib/nn/ops/elem.h
lib/models/sd/sd_internal.h:
lib/core/clock.h:
lib/models/sd/sd.h:
lib/core/error.h:
lib/nn/ctx.h:
lib/core/pool.h:
lib/nn/ops/attention.h:
lib/nn/ops/conv.h:
lib/nn/ops/elem.h:
