build-tsan/obj/lib/core/clock.o: lib/core/clock.c lib/core/clock.h
lib/core/clock.h:
