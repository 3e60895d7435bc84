build-tsan/obj/lib/io/container.o: lib/io/container.c lib/io/container.h \
 lib/core/error.h lib/core/alloc.h lib/core/crc32c.h lib/core/fault.h \
 lib/io/fileutil.h
lib/io/container.h:
lib/core/error.h:
lib/core/alloc.h:
lib/core/crc32c.h:
lib/core/fault.h:
lib/io/fileutil.h:
