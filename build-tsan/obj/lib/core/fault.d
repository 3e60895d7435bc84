build-tsan/obj/lib/core/fault.o: lib/core/fault.c lib/core/fault.h
lib/core/fault.h:
