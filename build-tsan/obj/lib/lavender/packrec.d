build-tsan/obj/lib/lavender/packrec.o: lib/lavender/packrec.c \
 lib/lavender/packrec.h lib/core/error.h lib/core/alloc.h lib/io/image.h \
 lib/io/safetensors.h lib/lavender/geometry.h
lib/lavender/packrec.h:
lib/core/error.h:
lib/core/alloc.h:
lib/io/image.h:
lib/io/safetensors.h:
lib/lavender/geometry.h:
