build-tsan/obj/lib/io/image_resize.o: lib/io/image_resize.c \
 lib/io/image.h lib/core/error.h lib/core/alloc.h
lib/io/image.h:
lib/core/error.h:
lib/core/alloc.h:
