build-tsan/obj/lib/nn/ops/act_cpu.o: lib/nn/ops/act_cpu.c \
 lib/nn/ops/act.h lib/nn/ctx.h lib/core/error.h lib/core/pool.h \
 lib/nn/ops/cpu_internal.h
lib/nn/ops/act.h:
lib/nn/ctx.h:
lib/core/error.h:
lib/core/pool.h:
lib/nn/ops/cpu_internal.h:
