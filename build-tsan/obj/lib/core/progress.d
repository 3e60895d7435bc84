build-tsan/obj/lib/core/progress.o: lib/core/progress.c \
 lib/core/progress.h lib/core/alloc.h lib/core/clock.h
lib/core/progress.h:
lib/core/alloc.h:
lib/core/clock.h:
