build-tsan/obj/lib/nn/ops/act_fast.o: lib/nn/ops/act_fast.c \
 lib/nn/ops/cpu_internal.h lib/core/pool.h lib/core/error.h lib/nn/ctx.h \
 lib/nn/ops/exp_avx2.h
lib/nn/ops/cpu_internal.h:
lib/core/pool.h:
lib/core/error.h:
lib/nn/ctx.h:
lib/nn/ops/exp_avx2.h:
