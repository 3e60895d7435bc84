build-tsan/obj/lib/eval/bench.o: lib/eval/bench.c lib/eval/bench.h \
 lib/core/error.h lib/core/progress.h lib/eval/match.h lib/core/parse.h \
 lib/core/error.h lib/io/fileutil.h
lib/eval/bench.h:
lib/core/error.h:
lib/core/progress.h:
lib/eval/match.h:
lib/core/parse.h:
lib/core/error.h:
lib/io/fileutil.h:
