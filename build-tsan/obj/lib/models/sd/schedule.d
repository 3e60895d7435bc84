build-tsan/obj/lib/models/sd/schedule.o: lib/models/sd/schedule.c \
 lib/core/error.h lib/models/sd/sd.h lib/models/sd/sd_config.h \
 lib/io/safetensors.h
lib/core/error.h:
lib/models/sd/sd.h:
lib/models/sd/sd_config.h:
lib/io/safetensors.h:
