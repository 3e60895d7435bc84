build-tsan/obj/lib/eval/score.o: lib/eval/score.c lib/eval/score.h \
 lib/core/error.h lib/eval/bench.h lib/core/progress.h lib/eval/match.h \
 lib/eval/pystr.h
lib/eval/score.h:
lib/core/error.h:
lib/eval/bench.h:
lib/core/progress.h:
lib/eval/match.h:
lib/eval/pystr.h:
