# sd-attnmap tokenize / lvd-pack tokenize as a user runs them.
. tests/cli/lib.inc
SA=$BUILD/sd-attnmap
LP=$BUILD/lvd-pack
D=${LVD_SHARED_DATA:-../shared/data}
expect_exit 2 "sd tokenize without --tokenizer" "$SA" tokenize --text x
expect_exit 2 "lp tokenize bad flag" "$LP" tokenize --no-such-flag
expect_exit 0 "lp tokenize --help" "$LP" tokenize --help
expect_stdout "--no-bos" "lp tokenize help lists flags" "$LP" tokenize --help
expect_stderr "cannot open" "lp missing tokenizer" "$LP" tokenize -t "$T_TMP/none" --text x
expect_exit 1 "sd missing tokenizer" "$SA" tokenize -t "$T_TMP/none" --text x
if [ ! -f "$D/README.md" ]; then
	skip "tokenize with real vocabularies (../shared/data absent)"
	finish; exit $?
fi
CL=$D/clip
LM=$D/llama3/tokenizer.model
expect_stdout "49406 320 1125 539 320 2368 49407" "sd ids" "$SA" tokenize -t "$CL" --text "A photo of a cat"
expect_stdout "49406 3306 1002 256 49407" "sd ids (.gz)" "$SA" tokenize -t "$CL/bpe_simple_vocab_16e6.txt.gz" --text "Hello World!"
expect_stdout '"offsets":[[0,0],[0,5]' "sd json" "$SA" tokenize -t "$CL" --json --text "Hello World!"
ok "sd stdin lines" sh -c "printf 'a cat\nHello World!\n' | '$SA' tokenize -t '$CL' > '$T_TMP/two'"
if [ "$(wc -l < "$T_TMP/two")" -eq 2 ] && [ "$(sed -n 2p "$T_TMP/two")" = "49406 3306 1002 256 49407" ]; then pass; else fail "sd one output line per input line"; fi
o=$("$SA" tokenize -t "$CL" --max-length 77 --pad zero --text "a cat" | wc -w)
[ "$o" -eq 77 ] && pass || fail "sd --max-length 77 --pad zero gives 77 ids (got $o)"
expect_exit 2 "sd --pad without --max-length" "$SA" tokenize -t "$CL" --pad eos --text x
expect_stdout "128000 2028 374 264 1296 11914 13" "lp ids" "$LP" tokenize -t "$LM" --text "This is a test sentence."
expect_stdout "2028 374 264 1296 11914 13 128001" "lp --no-bos --eos" "$LP" tokenize -t "$LM" --no-bos --eos --text "This is a test sentence."
expect_stdout "128000 128006 2028" "lp --special" "$LP" tokenize -t "$LM" --special --text "<|start_header_id|>This"
o=$("$LP" tokenize -t "$LM" --text "<|eot_id|>")
case " $o " in *" 128009 "*) fail "lp: special string without --special must stay text";; *) pass;; esac
expect_stdout '"tokens":["<|begin_of_text|>","Hello","Ġworld"]' "lp json" "$LP" tokenize -t "$LM" --json --text "Hello world"
printf 'fine\nbad \377 line\nnext\n' > "$T_TMP/bad.txt"
expect_exit 1 "lp invalid UTF-8 exits 1" sh -c "'$LP' tokenize -t '$LM' < '$T_TMP/bad.txt'"
expect_stderr "line 2: invalid UTF-8" "lp invalid UTF-8 names the line" sh -c "'$LP' tokenize -t '$LM' < '$T_TMP/bad.txt'"
expect_stderr "line 2: invalid UTF-8" "sd invalid UTF-8 names the line" sh -c "'$SA' tokenize -t '$CL' < '$T_TMP/bad.txt'"
finish
