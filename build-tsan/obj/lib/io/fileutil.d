build-tsan/obj/lib/io/fileutil.o: lib/io/fileutil.c lib/io/fileutil.h \
 lib/core/error.h lib/core/alloc.h lib/core/fault.h
lib/io/fileutil.h:
lib/core/error.h:
lib/core/alloc.h:
lib/core/fault.h:
