build-tsan/obj/lib/io/manifest.o: lib/io/manifest.c lib/io/manifest.h \
 lib/core/error.h lib/core/alloc.h lib/core/fault.h lib/io/fileutil.h
lib/io/manifest.h:
lib/core/error.h:
lib/core/alloc.h:
lib/core/fault.h:
lib/io/fileutil.h:
