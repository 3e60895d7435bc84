build-tsan/obj/lib/models/mllama/mllama_model.o: \
 lib/models/mllama/mllama_model.c lib/core/alloc.h \
 lib/models/mllama/mllama_internal.h lib/models/mllama/mllama.h \
 lib/core/error.h lib/nn/ctx.h lib/core/pool.h lib/nn/ops/attn.h \
 lib/nn/ops/xent.h
lib/core/alloc.h:
lib/models/mllama/mllama_internal.h:
lib/models/mllama/mllama.h:
lib/core/error.h:
lib/nn/ctx.h:
lib/core/pool.h:
lib/nn/ops/attn.h:
lib/nn/ops/xent.h:
