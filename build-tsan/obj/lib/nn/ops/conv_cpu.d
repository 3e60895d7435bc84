build-tsan/obj/lib/nn/ops/conv_cpu.o: lib/nn/ops/conv_cpu.c \
 lib/nn/ops/conv.h lib/nn/ctx.h lib/core/error.h lib/core/pool.h \
 lib/nn/ops/gemm.h
lib/nn/ops/conv.h:
lib/nn/ctx.h:
lib/core/error.h:
lib/core/pool.h:
lib/nn/ops/gemm.h:
