build-tsan/obj/lib/nn/ops/attn_cpu.o: lib/nn/ops/attn_cpu.c \
 lib/nn/ops/attn.h lib/nn/ctx.h lib/core/error.h lib/core/pool.h \
 lib/nn/ops/cpu_internal.h lib/nn/ops/exp_avx2.h lib/nn/ops/gemm.h
lib/nn/ops/attn.h:
lib/nn/ctx.h:
lib/core/error.h:
lib/core/pool.h:
lib/nn/ops/cpu_internal.h:
lib/nn/ops/exp_avx2.h:
lib/nn/ops/gemm.h:
