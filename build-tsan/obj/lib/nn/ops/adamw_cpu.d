build-tsan/obj/lib/nn/ops/adamw_cpu.o: lib/nn/ops/adamw_cpu.c \
 lib/nn/ops/adamw.h lib/nn/ctx.h lib/core/error.h lib/core/pool.h \
 lib/nn/ops/cpu_internal.h
lib/nn/ops/adamw.h:
lib/nn/ctx.h:
lib/core/error.h:
lib/core/pool.h:
lib/nn/ops/cpu_internal.h:
