build-tsan/obj/lib/lavender/mapsrec.o: lib/lavender/mapsrec.c \
 lib/lavender/mapsrec.h lib/core/error.h lib/lavender/attnmap.h \
 lib/core/alloc.h lib/io/json.h
lib/lavender/mapsrec.h:
lib/core/error.h:
lib/lavender/attnmap.h:
lib/core/alloc.h:
lib/io/json.h:
