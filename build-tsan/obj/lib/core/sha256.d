build-tsan/obj/lib/core/sha256.o: lib/core/sha256.c lib/core/sha256.h \
 lib/core/error.h lib/core/fault.h
lib/core/sha256.h:
lib/core/error.h:
lib/core/fault.h:
