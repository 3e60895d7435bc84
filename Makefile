# lvd — one plain Makefile.
#   make            build lib/liblvd.a (as $(BUILD)/liblvd.a) and the tools in $(BUILD)/
#   make test       build and run every test; last line "total: N passed, N failed, N skipped"
#   make test SAN=1 the same with AddressSanitizer + UndefinedBehaviorSanitizer (in build-san/)
#   make test TSAN=1 ThreadSanitizer (in build-tsan/) over the threaded subset TSAN_TESTS
#                   (the pool, container, loader, the tools' worker paths); TSAN_TESTS=all
#                   runs every test
#   make bench      peer benchmarks (needs `make ref-env` for the PyTorch side)
#   make deps       install the Debian packages (scripts/deps.sh)
#   make ref-env    Python venv (.venv-ref/) for golden files and peer benchmarks
#   make golden     regenerate tests/golden/ from tests/ref/*.py (needs ref-env)
# Overrides: CUDA=0|1 NCCL=0|1 CUDNN=0|1 MPI=0|1 SAN=0|1 TSAN=0|1 NVCC=path CC=compiler NVARCH=sm_XY

CC      ?= cc
SAN     ?= 0
TSAN    ?= 0
VERSION := 0.1.0

ifeq ($(TSAN),1)
BUILD   ?= build-tsan
OPT     ?= -O1 -g -fno-omit-frame-pointer -fsanitize=thread
LDSAN   := -fsanitize=thread
CUDA    ?= 0
else ifeq ($(SAN),1)
BUILD   ?= build-san
OPT     ?= -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN   := -fsanitize=address,undefined
CUDA    ?= 0
else
BUILD   ?= build
OPT     ?= -O2 -g -march=x86-64-v2
LDSAN   :=
endif

# ---- feature detection ---------------------------------------------------------
CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(shell command -v nvcc 2>/dev/null || { test -x $(CUDA_HOME)/bin/nvcc && echo $(CUDA_HOME)/bin/nvcc; })
ifeq ($(origin CUDA),undefined)
CUDA := $(if $(NVCC),1,0)
endif
ifeq ($(CUDA),1)
ifeq ($(NVCC),)
$(error CUDA=1 but no nvcc found; set NVCC=/path/to/nvcc or CUDA=0)
endif
endif
NCCL_H  := $(firstword $(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h))
CUDNN_H := $(firstword $(wildcard $(CUDA_HOME)/include/cudnn.h /usr/include/cudnn.h /usr/include/x86_64-linux-gnu/cudnn.h))
ifeq ($(origin NCCL),undefined)
NCCL := $(if $(and $(filter 1,$(CUDA)),$(NCCL_H)),1,0)
endif
ifeq ($(origin CUDNN),undefined)
CUDNN := $(if $(and $(filter 1,$(CUDA)),$(CUDNN_H)),1,0)
endif
# MPI (Open MPI, Debian libopenmpi-dev): flags from pkg-config ompi-c, else mpicc -showme.
# Only lib/dist/dist_mpi.c is compiled with MPI_CFLAGS, and only lvd-sft and the dist tests
# link MPI_LIBS (other binaries never pull lib/dist in from liblvd.a).
MPI_PC   := $(shell pkg-config --exists ompi-c 2>/dev/null && echo ompi-c)
MPI_CFLAGS ?= $(if $(MPI_PC),$(shell pkg-config --cflags $(MPI_PC)),$(shell mpicc -showme:compile 2>/dev/null))
MPI_LIBS   ?= $(if $(MPI_PC),$(shell pkg-config --libs $(MPI_PC)),$(shell mpicc -showme:link 2>/dev/null))
MPI_H    := $(firstword $(foreach d,$(patsubst -I%,%,$(filter -I%,$(MPI_CFLAGS))) /usr/include,$(wildcard $(d)/mpi.h)))
ifeq ($(origin MPI),undefined)
MPI := $(if $(MPI_H),1,0)
endif
ifeq ($(MPI),1)
ifeq ($(MPI_H),)
$(error MPI=1 but no mpi.h found (apt-get install libopenmpi-dev, or MPI=0))
endif
else
MPI_CFLAGS :=
MPI_LIBS   :=
endif
OPENBLAS := $(if $(wildcard /usr/include/x86_64-linux-gnu/cblas.h /usr/include/cblas.h /usr/include/openblas/cblas.h),1,0)

FEATURES := -DLVD_VERSION=\"$(VERSION)\" -DLVD_HAVE_CUDA=$(CUDA) -DLVD_HAVE_NCCL=$(NCCL) \
            -DLVD_HAVE_CUDNN=$(CUDNN) -DLVD_HAVE_MPI=$(MPI) -DLVD_HAVE_OPENBLAS=1

CFLAGS  ?=
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation $(OPT) -pthread \
           -MMD -MP -I. -Ilib -Itools $(FEATURES)
LDLIBS  := -lzstd -lpng -lturbojpeg -ljansson -lpcre2-8 -lutf8proc -lopenblas -lm -lpthread
LDFLAGS := $(LDSAN) -pthread

ifeq ($(CUDA),1)
# NVWERROR= (empty) keeps a build on another toolkit going past new warnings.
NVWERROR ?= -Werror all-warnings -Xcompiler -Werror
# Target GPU architecture (sm_90: H100/H200; the PTX inside also JITs on newer GPUs).
NVARCH  ?= sm_90
NVFLAGS ?= -O2 -std=c++17 -arch=$(NVARCH) -Xcompiler -Wall -Xcompiler -Wextra -Xcompiler -Wno-unused-parameter \
           $(NVWERROR) -I. -Ilib $(FEATURES)
LDLIBS  += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++
CFLAGS  += -I$(CUDA_HOME)/include
ifeq ($(NCCL),1)
LDLIBS  += -lnccl
endif
ifeq ($(CUDNN),1)
LDLIBS  += -lcudnn
endif
endif

# ---- sources -------------------------------------------------------------------
LIB_C    := $(sort $(shell find lib -name '*.c'))
LIB_CU   := $(if $(filter 1,$(CUDA)),$(sort $(shell find lib -name '*.cu')))
LIB_OBJ  := $(LIB_C:%.c=$(BUILD)/obj/%.o) $(LIB_CU:%.cu=$(BUILD)/obj/%.cu.o)
TOOLS    := sd-attnmap lvd-pack lvd-sft lvd-eval lvd-shapes lvd-report
COMMON_C := $(sort $(wildcard tools/common/*.c))
COMMON_OBJ := $(COMMON_C:%.c=$(BUILD)/obj/%.o)
TEST_C   := $(sort $(wildcard tests/unit/*.c))
TEST_BIN := $(TEST_C:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_C  := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_C:bench/%.c=$(BUILD)/bench/%)
LIBA     := $(BUILD)/liblvd.a
DEPS_OK  := $(BUILD)/.deps-ok
# GPU tests and benches (tests/gpu/): built when CUDA=1. The op test lands among the unit
# test binaries so `make test` runs it (it SKIPs without a device).
GPU_TEST_BIN  := $(if $(filter 1,$(CUDA)),$(BUILD)/tests/test_cuda_ops $(BUILD)/tests/test_cuda_dist $(BUILD)/tests/test_cuda_sd $(BUILD)/tests/test_cuda_mllama)
GPU_BENCH_BIN := $(if $(filter 1,$(CUDA)),$(BUILD)/gpu/bench_gemm $(BUILD)/gpu/bench_sd_ops $(BUILD)/gpu/bench_mllama_train)

# Objects depend on the feature set they were compiled with (CUDA, NCCL, cuDNN, NVARCH), so
# switching CUDA=0/1 in one build directory rebuilds instead of mixing stale objects.
FEATURES_STAMP := $(BUILD)/.features
STAMP_TEXT := $(FEATURES) $(if $(filter 1,$(CUDA)),$(NVARCH))
$(shell mkdir -p $(BUILD) && { echo '$(STAMP_TEXT)' | cmp -s - $(FEATURES_STAMP) || echo '$(STAMP_TEXT)' > $(FEATURES_STAMP); })

all: features $(LIBA) $(TOOLS:%=$(BUILD)/%) $(GPU_TEST_BIN) $(GPU_BENCH_BIN)

features:
	@echo "lvd $(VERSION) build ($(BUILD)):"
	@echo "  CUDA     $(if $(filter 1,$(CUDA)),yes ($(NVCC)),no)"
	@echo "  NCCL     $(if $(filter 1,$(NCCL)),yes,no)"
	@echo "  cuDNN    $(if $(filter 1,$(CUDNN)),yes,no)"
	@echo "  MPI      $(if $(filter 1,$(MPI)),yes,no (make deps; the multi-rank tests SKIP))"
	@echo "  OpenBLAS $(if $(filter 1,$(OPENBLAS)),yes,no (make deps))"
	@echo "  SAN      $(if $(filter 1,$(SAN)),ASan+UBSan,$(if $(filter 1,$(TSAN)),ThreadSanitizer,no))"

# Missing headers: install the Debian packages (or print the command when not root).
$(DEPS_OK):
	@mkdir -p $(@D)
	@sh scripts/deps.sh --check || sh scripts/deps.sh
	@touch $@

V ?= 0
Q := $(if $(filter 1,$(V)),,@)
$(BUILD)/obj/%.o: %.c $(FEATURES_STAMP) | $(DEPS_OK)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu $(FEATURES_STAMP) | $(DEPS_OK)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  NVCC    $<")
	$(Q)$(NVCC) $(NVFLAGS) -MMD -MP -c $< -o $@

$(LIBA): $(LIB_OBJ)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

# Each tools/<tool>/*.c plus tools/common/*.c becomes $(BUILD)/<tool>.
define TOOL_RULE
$(1)_OBJ := $$(patsubst %.c,$(BUILD)/obj/%.o,$$(sort $$(wildcard tools/$(1)/*.c)))
$(BUILD)/$(1): $$($(1)_OBJ) $(COMMON_OBJ) $(LIBA)
	@$(if $(Q),echo "  LD      $$@")
	$(Q)$(CC) $(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach t,$(TOOLS),$(eval $(call TOOL_RULE,$(t))))

# MPI: the MPI backend of lib/dist compiles against mpi.h; lvd-sft and the tests that
# use lib/dist link libmpi.
$(BUILD)/obj/lib/dist/dist_mpi.o: CFLAGS += $(MPI_CFLAGS)
$(BUILD)/lvd-sft: LDLIBS += $(MPI_LIBS)
DIST_TESTS := $(BUILD)/tests/test_dist $(BUILD)/tests/test_cuda_dist
$(DIST_TESTS): LDLIBS += $(MPI_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIBA) | $(DEPS_OK)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(CFLAGS) -Itests -o $@ $< $(LIBA) $(LDFLAGS) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(LIBA) | $(DEPS_OK)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  BENCH   $@")
	$(Q)$(CC) $(CFLAGS) -Itests -o $@ $< $(LIBA) $(LDFLAGS) $(LDLIBS)

$(BUILD)/tests/test_cuda_%: tests/gpu/test_cuda_%.c $(LIBA) | $(DEPS_OK)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(CFLAGS) -Itests -o $@ $< $(LIBA) $(LDFLAGS) $(LDLIBS)

$(BUILD)/gpu/%: tests/gpu/%.c $(LIBA) | $(DEPS_OK)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  BENCH   $@")
	$(Q)$(CC) $(CFLAGS) -Itests -o $@ $< $(LIBA) $(LDFLAGS) $(LDLIBS)

# The ThreadSanitizer subset (make test TSAN=1): tests that run the pool, the container
# writer, the tools' worker threads and the trainer's loader. TSAN_TESTS=all: everything.
# (test_sd_attnmap.sh is left out for CI time: ~4 min under TSan; test_kill.sh runs
# sd-attnmap with 2 worker threads.)
TSAN_TESTS ?= test_pool test_container test_loader test_reliability test_sft test_lvd_pack.sh \
              test_lvd_sft.sh test_reliability.sh test_kill.sh
test: all $(TEST_BIN) $(GPU_TEST_BIN)
	$(if $(filter 1,$(CUDA)),,@rm -f $(BUILD)/tests/test_cuda_ops $(BUILD)/tests/test_cuda_dist $(BUILD)/tests/test_cuda_sd $(BUILD)/tests/test_cuda_mllama)
	@BUILD=$(BUILD) $(if $(and $(filter 1,$(TSAN)),$(filter-out all,$(TSAN_TESTS))),LVD_TESTS="$(TSAN_TESTS)" TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1") sh tests/run.sh

# (bench/dist.sh writes its pack with tests/unit/test_sft.c's fixture writer)
bench: all $(BENCH_BIN) $(BUILD)/tests/test_sft
	@BUILD=$(BUILD) sh bench/run.sh

deps:
	sh scripts/deps.sh

REF_PY := .venv-ref/bin/python
ref-env: $(REF_PY)
$(REF_PY): tests/ref/requirements.txt
	python3 -m venv .venv-ref
	.venv-ref/bin/pip install --upgrade pip
	.venv-ref/bin/pip install -r tests/ref/requirements.txt
	@touch $@

# gen_sft.py runs the built tools (sd-attnmap, lvd-pack, lvd-sft) and the loader dumper.
golden: $(REF_PY) all $(BUILD)/tests/test_sft_golden
	BUILD=$(BUILD) sh tests/ref/gen_all.sh $(REF_PY)

demo: all
	@BUILD=$(BUILD) sh data/demo.sh

# make attnmaps / pack / sft / eval / sweep on your data (README.md, "Pipeline with make")
include mk/pipeline.mk

clean:
	rm -rf build build-san build-tsan

.PHONY: all features test bench deps ref-env golden demo clean
.DELETE_ON_ERROR:

-include $(shell find $(BUILD)/obj $(BUILD)/tests $(BUILD)/bench $(BUILD)/gpu -name '*.d' 2>/dev/null)

# ---- fuzzing (tests/fuzz/, docs/fuzz.md) ------------------------------------------
#   make fuzz FUZZ_SECONDS=N [FUZZ_TARGETS="json image"]   each harness N s under libFuzzer
#   make fuzz-build                                         only build build-fuzz/fuzz/fuzz_*
# clang with libFuzzer (Debian: clang) builds the library again in $(FUZZ_BUILD) with
# ASan+UBSan and coverage, CUDA=0; each target runs niced, one at a time, on a working
# corpus $(FUZZ_BUILD)/corpus/<target> seeded from tests/fuzz/corpus/<target> and
# tests/fuzz/regress/<target>; crashes land in $(FUZZ_BUILD)/artifacts/. `make test`
# replays the checked-in inputs without clang (tests/unit/test_fuzz_regress.c).
FUZZ_CC      ?= $(shell command -v clang-14 2>/dev/null || command -v clang 2>/dev/null)
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $(FUZZ_SANFLAGS)
FUZZ_ALL     := $(sort $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -pthread \
                -I. -Ilib -Itests $(filter-out -DLVD_HAVE_CUDA=% -DLVD_HAVE_NCCL=% -DLVD_HAVE_CUDNN=% -DLVD_HAVE_MPI=%,$(FEATURES)) \
                -DLVD_HAVE_CUDA=0 -DLVD_HAVE_NCCL=0 -DLVD_HAVE_CUDNN=0 -DLVD_HAVE_MPI=0
FUZZ_LDLIBS  := -lzstd -lpng -lturbojpeg -ljansson -lpcre2-8 -lutf8proc -lopenblas -lm -lpthread

# (not inside the sub-make that builds $(FUZZ_BUILD)/liblvd.a with the rules above)
ifneq ($(BUILD),$(FUZZ_BUILD))

$(FUZZ_BUILD)/liblvd.a: FORCE
	@test -n "$(FUZZ_CC)" || { echo "make fuzz needs clang with libFuzzer (apt-get install clang)" >&2; exit 1; }
	@CFLAGS=-Wno-unknown-warning-option $(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) CUDA=0 NCCL=0 CUDNN=0 MPI=0 \
		OPT="$(FUZZ_OPT)" $(FUZZ_BUILD)/liblvd.a

$(FUZZ_BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_BUILD)/liblvd.a
	@mkdir -p $(@D)
	@echo "  FUZZ    $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -O1 -g -fsanitize=fuzzer $(FUZZ_SANFLAGS) -o $@ $< \
		$(FUZZ_BUILD)/liblvd.a $(FUZZ_LDLIBS)

fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz/fuzz_%)

fuzz: fuzz-build
	@FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz/run.sh $(FUZZ_TARGETS)

# Rebuilds tests/fuzz/corpus/ (checked in) from tests/golden and tests/fuzz/mkseeds.c.
$(BUILD)/fuzz-seeds/mkseeds: tests/fuzz/mkseeds.c $(LIBA) | $(DEPS_OK)
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -Itests -o $@ $< $(LIBA) $(LDFLAGS) $(LDLIBS)

fuzz-seeds: $(BUILD)/fuzz-seeds/mkseeds
	BUILD=$(BUILD) sh tests/fuzz/mkseeds.sh

fuzz-clean:
	rm -rf $(FUZZ_BUILD)
clean: fuzz-clean

FORCE:
.PHONY: fuzz fuzz-build fuzz-seeds fuzz-clean FORCE
endif
