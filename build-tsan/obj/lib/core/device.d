build-tsan/obj/lib/core/device.o: lib/core/device.c lib/core/device.h
lib/core/device.h:
