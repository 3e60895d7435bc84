build-tsan/obj/lib/models/sd/sd_load.o: lib/models/sd/sd_load.c \
 lib/core/alloc.h lib/core/error.h lib/io/fileutil.h lib/io/safetensors.h \
 lib/models/sd/sd_config.h lib/models/sd/sd.h lib/models/sd/sd_internal.h \
 lib/core/clock.h
lib/core/alloc.h:
lib/core/error.h:
lib/io/fileutil.h:
lib/io/safetensors.h:
lib/models/sd/sd_config.h:
lib/models/sd/sd.h:
lib/models/sd/sd_internal.h:
lib/core/clock.h:
