build-tsan/obj/lib/models/mllama/mllama_load.o: \
 lib/models/mllama/mllama_load.c lib/core/alloc.h lib/io/fileutil.h \
 lib/core/error.h lib/io/json.h lib/io/safetensors.h \
 lib/models/mllama/mllama_internal.h lib/models/mllama/mllama.h \
 lib/nn/ctx.h lib/core/pool.h lib/nn/ops/lora.h
lib/core/alloc.h:
lib/io/fileutil.h:
lib/core/error.h:
lib/io/json.h:
lib/io/safetensors.h:
lib/models/mllama/mllama_internal.h:
lib/models/mllama/mllama.h:
lib/nn/ctx.h:
lib/core/pool.h:
lib/nn/ops/lora.h:
