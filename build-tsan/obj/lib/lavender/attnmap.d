build-tsan/obj/lib/lavender/attnmap.o: lib/lavender/attnmap.c \
 lib/lavender/attnmap.h lib/core/error.h lib/core/alloc.h \
 lib/core/parse.h lib/core/error.h
lib/lavender/attnmap.h:
lib/core/error.h:
lib/core/alloc.h:
lib/core/parse.h:
lib/core/error.h:
