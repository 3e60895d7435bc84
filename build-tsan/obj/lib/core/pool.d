build-tsan/obj/lib/core/pool.o: lib/core/pool.c lib/core/pool.h \
 lib/core/error.h
lib/core/pool.h:
lib/core/error.h:
