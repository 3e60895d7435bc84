build-tsan/obj/lib/models/sd/sd_config.o: lib/models/sd/sd_config.c \
 lib/core/error.h lib/io/json.h lib/io/safetensors.h \
 lib/models/sd/sd_config.h lib/models/sd/sd.h
lib/core/error.h:
lib/io/json.h:
lib/io/safetensors.h:
lib/models/sd/sd_config.h:
lib/models/sd/sd.h:
