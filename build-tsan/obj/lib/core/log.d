build-tsan/obj/lib/core/log.o: lib/core/log.c lib/core/log.h
lib/core/log.h:
