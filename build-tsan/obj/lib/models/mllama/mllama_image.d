build-tsan/obj/lib/models/mllama/mllama_image.o: \
 lib/models/mllama/mllama_image.c lib/io/image.h lib/core/error.h \
 lib/models/mllama/mllama.h lib/nn/ctx.h lib/core/pool.h
lib/io/image.h:
lib/core/error.h:
lib/models/mllama/mllama.h:
lib/nn/ctx.h:
lib/core/pool.h:
