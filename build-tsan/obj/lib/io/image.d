build-tsan/obj/lib/io/image.o: lib/io/image.c lib/io/image.h \
 lib/core/error.h lib/core/alloc.h lib/core/log.h lib/io/fileutil.h
lib/io/image.h:
lib/core/error.h:
lib/core/alloc.h:
lib/core/log.h:
lib/io/fileutil.h:
