build-tsan/obj/lib/models/mllama/mllama_text.o: \
 lib/models/mllama/mllama_text.c lib/core/alloc.h \
 lib/models/mllama/mllama_internal.h lib/models/mllama/mllama.h \
 lib/core/error.h lib/nn/ctx.h lib/core/pool.h lib/nn/ops/act.h \
 lib/nn/ops/attn.h lib/nn/ops/embed.h lib/nn/ops/gate.h lib/nn/ops/gemm.h \
 lib/nn/ops/norm.h
lib/core/alloc.h:
lib/models/mllama/mllama_internal.h:
lib/models/mllama/mllama.h:
lib/core/error.h:
lib/nn/ctx.h:
lib/core/pool.h:
lib/nn/ops/act.h:
lib/nn/ops/attn.h:
lib/nn/ops/embed.h:
lib/nn/ops/gate.h:
lib/nn/ops/gemm.h:
lib/nn/ops/norm.h:
