build-tsan/obj/lib/models/sd/clip.o: lib/models/sd/clip.c \
 lib/models/sd/sd_internal.h lib/core/clock.h lib/models/sd/sd.h \
 lib/core/error.h lib/nn/ctx.h lib/core/pool.h lib/nn/ops/act.h \
 lib/nn/ops/attention.h lib/nn/ops/elem.h lib/nn/ops/norm.h
lib/models/sd/sd_internal.h:
lib/core/clock.h:
lib/models/sd/sd.h:
lib/core/error.h:
lib/nn/ctx.h:
lib/core/pool.h:
lib/nn/ops/act.h:
lib/nn/ops/attention.h:
lib/nn/ops/elem.h:
lib/nn/ops/norm.h:
