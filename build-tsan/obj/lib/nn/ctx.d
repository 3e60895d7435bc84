build-tsan/obj/lib/nn/ctx.o: lib/nn/ctx.c lib/nn/ctx.h lib/core/error.h \
 lib/core/pool.h lib/core/alloc.h
lib/nn/ctx.h:
lib/core/error.h:
lib/core/pool.h:
lib/core/alloc.h:
