build-tsan/obj/lib/io/safetensors_write.o: lib/io/safetensors_write.c \
 lib/core/alloc.h lib/core/error.h lib/core/strbuf.h lib/io/fileutil.h \
 lib/io/safetensors.h lib/io/safetensors_internal.h
lib/core/alloc.h:
lib/core/error.h:
lib/core/strbuf.h:
lib/io/fileutil.h:
lib/io/safetensors.h:
lib/io/safetensors_internal.h:
