/*
 * main.c -- the fuzzers' main(): libFuzzer's driver, started at the same
 * stack alignment in every run.
 *
 * libFuzzer counts the depth of the stack as a feature (clang's
 * -fsanitize-coverage=stack-depth): the distance from where its driver
 * began to the deepest frame an input reached.  The kernel starts the
 * stack at a random 16-byte boundary (ASLR; the size of the environment
 * moves it too), while ASan aligns instrumented frames to 32 bytes, so
 * the same input measured 16 bytes more or less from one run to the
 * next, found a "new" depth in one run and not in the other, and the
 * fixed pass of make check (scripts/fuzz --fixed) went another way.
 * Starting the driver on a page boundary makes the depth a property of
 * the input alone.  Built without sanitizers or coverage: it is not
 * under test.
 */
#include <alloca.h>
#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry for a main of one's own (libclang_rt.fuzzer_no_main). */
int LLVMFuzzerRunDriver(int *argc, char ***argv,
                        int (*cb)(const uint8_t *data, size_t size));
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
main(int argc, char **argv)
{
	volatile char *pad = alloca((uintptr_t)__builtin_frame_address(0) % 4096 + 1);

	pad[0] = 0;
	return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput);
}
