build-tsan/obj/lib/core/alloc.o: lib/core/alloc.c lib/core/alloc.h \
 lib/core/error.h lib/core/fault.h
lib/core/alloc.h:
lib/core/error.h:
lib/core/fault.h:
