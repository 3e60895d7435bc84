build-tsan/obj/lib/eval/match.o: lib/eval/match.c lib/eval/match.h \
 lib/core/strbuf.h lib/eval/pystr.h
lib/eval/match.h:
lib/core/strbuf.h:
lib/eval/pystr.h:
