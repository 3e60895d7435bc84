build-tsan/obj/lib/io/json.o: lib/io/json.c lib/io/json.h \
 lib/core/error.h lib/core/fault.h
lib/io/json.h:
lib/core/error.h:
lib/core/fault.h:
