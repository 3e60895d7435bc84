build-tsan/obj/lib/io/safetensors.o: lib/io/safetensors.c \
 lib/io/safetensors.h lib/core/error.h lib/core/alloc.h lib/core/fault.h \
 lib/io/fileutil.h lib/io/safetensors_internal.h
lib/io/safetensors.h:
lib/core/error.h:
lib/core/alloc.h:
lib/core/fault.h:
lib/io/fileutil.h:
lib/io/safetensors_internal.h:
