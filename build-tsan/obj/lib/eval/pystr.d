build-tsan/obj/lib/eval/pystr.o: lib/eval/pystr.c lib/eval/pystr.h
lib/eval/pystr.h:
