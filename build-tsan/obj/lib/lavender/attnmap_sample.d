build-tsan/obj/lib/lavender/attnmap_sample.o: \
 lib/lavender/attnmap_sample.c lib/lavender/attnmap_sample.h \
 lib/core/error.h lib/models/sd/sd.h lib/core/alloc.h lib/core/clock.h \
 lib/core/rng.h lib/io/image.h lib/io/safetensors.h \
 lib/lavender/attnmap.h lib/lavender/mapsrec.h
lib/lavender/attnmap_sample.h:
lib/core/error.h:
lib/models/sd/sd.h:
lib/core/alloc.h:
lib/core/clock.h:
lib/core/rng.h:
lib/io/image.h:
lib/io/safetensors.h:
lib/lavender/attnmap.h:
lib/lavender/mapsrec.h:
