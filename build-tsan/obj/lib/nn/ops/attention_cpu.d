build-tsan/obj/lib/nn/ops/attention_cpu.o: lib/nn/ops/attention_cpu.c \
 lib/nn/ops/attention.h lib/nn/ctx.h lib/core/error.h lib/core/pool.h \
 lib/nn/ops/cpu_internal.h lib/nn/ops/softmax.h
lib/nn/ops/attention.h:
lib/nn/ctx.h:
lib/core/error.h:
lib/core/pool.h:
lib/nn/ops/cpu_internal.h:
lib/nn/ops/softmax.h:
