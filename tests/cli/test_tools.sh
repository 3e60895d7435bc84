# CLI basics for every tool: --help (exit 0, stdout), --version, bad usage (exit 2).
. tests/cli/lib.inc
for t in sd-attnmap lvd-pack lvd-sft lvd-eval; do
	bin=$BUILD/$t
	expect_exit 0 "$t --help" "$bin" --help
	expect_stdout "usage: $t" "$t --help text" "$bin" --help
	expect_stdout "features: CUDA=" "$t --version" "$bin" --version
	expect_exit 2 "$t no args" "$bin"
	expect_exit 2 "$t bad command" "$bin" no-such-command
	expect_stderr "unknown command 'no-such-command'" "$t bad command message" "$bin" no-such-command
	expect_exit 2 "$t bad flag" "$bin" --no-such-flag
done
finish
