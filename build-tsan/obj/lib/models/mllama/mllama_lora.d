build-tsan/obj/lib/models/mllama/mllama_lora.o: \
 lib/models/mllama/mllama_lora.c lib/models/mllama/mllama_internal.h \
 lib/models/mllama/mllama.h lib/core/error.h lib/nn/ctx.h lib/core/pool.h \
 lib/nn/ops/gemm.h lib/nn/ops/lora.h
lib/models/mllama/mllama_internal.h:
lib/models/mllama/mllama.h:
lib/core/error.h:
lib/nn/ctx.h:
lib/core/pool.h:
lib/nn/ops/gemm.h:
lib/nn/ops/lora.h:
