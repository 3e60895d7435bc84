build-tsan/obj/lib/core/error.o: lib/core/error.c lib/core/error.h
lib/core/error.h:
