build-tsan/obj/lib/lavender/aligner_io.o: lib/lavender/aligner_io.c \
 lib/lavender/aligner.h lib/core/error.h lib/io/safetensors.h
lib/lavender/aligner.h:
lib/core/error.h:
lib/io/safetensors.h:
