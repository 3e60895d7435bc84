build-tsan/obj/lib/core/parse.o: lib/core/parse.c lib/core/parse.h \
 lib/core/error.h
lib/core/parse.h:
lib/core/error.h:
