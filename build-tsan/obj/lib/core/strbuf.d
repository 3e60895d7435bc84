build-tsan/obj/lib/core/strbuf.o: lib/core/strbuf.c lib/core/strbuf.h \
 lib/core/alloc.h
lib/core/strbuf.h:
lib/core/alloc.h:
