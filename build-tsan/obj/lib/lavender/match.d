build-tsan/obj/lib/lavender/match.o: lib/lavender/match.c \
 lib/lavender/match.h lib/core/error.h lib/core/alloc.h lib/text/words.h \
 lib/text/tokens.h
lib/lavender/match.h:
lib/core/error.h:
lib/core/alloc.h:
lib/text/words.h:
lib/text/tokens.h:
