build-tsan/obj/lib/lavender/aligner_cfg.o: lib/lavender/aligner_cfg.c \
 lib/lavender/aligner.h lib/core/error.h lib/core/rng.h
lib/lavender/aligner.h:
lib/core/error.h:
lib/core/rng.h:
