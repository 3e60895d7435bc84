# mk/pipeline.mk — the Lavender pipeline on your data as make targets (README.md,
# "Pipeline with make"). Included by the Makefile.
#
#   make attnmaps  SD=... MANIFEST=... [IMAGES=...] [SHARD=i/N]   stage 1: SD maps
#   make pack      VLM=...                                          stage 2: training pack
#   make sft       [LR=... LAMBDA=... EPOCHS=... LORA=...]          stage 3: LoRA + Aligner
#   make eval      BENCH=... [BENCH_IMAGES=...] [EVAL_PACK=...]     lvd-eval run (+ align)
#   make sweep     LRS="1e-4 2e-4" LAMBDAS="1 10"                   sft + eval per combination
#
# Every stage writes under OUT. Dependencies are files: each stage's options are written
# to a parameter file OUT/.params/<stage> that is rewritten only when its text changes,
# and each stage's result is a stamp file depending on its parameter file and on the
# previous stage's stamp. So changing LR, LAMBDA, EPOCHS, LORA or SFTFLAGS re-runs sft and
# eval only; changing VLM or PACKFLAGS re-runs pack, sft and eval; changing SD or
# MANIFEST re-runs everything. (It also works alone: make -f mk/pipeline.mk PIPE_BIN=build.) Run folders are named by their training options
# (OUT/runs/lr<LR>-lambda<LAMBDA>-ep<EPOCHS>[-<RUN_TAG>]), so a sweep keeps every run.

OUT      ?= pipeline
SD       ?=
MANIFEST ?=
IMAGES   ?= $(dir $(MANIFEST))
TOKENIZER ?= $(SD)/tokenizer
VLM      ?=
LR       ?= 1e-4
LAMBDA   ?= 10
EPOCHS   ?= 1
LORA     ?= r=8,alpha=32,dropout=0.05,targets=q_proj,v_proj
NPROC    ?= 1
THREADS  ?=
SHARD    ?=
RUN_TAG  ?=
BENCH    ?=
BENCH_IMAGES ?= $(dir $(BENCH))
EVAL_PACK ?=
SDFLAGS  ?=
PACKFLAGS ?=
SFTFLAGS ?=
EVALFLAGS ?=
LRS      ?= $(LR)
LAMBDAS  ?= $(LAMBDA)
PIPE_BIN ?= $(BUILD)

# one machine's share of the SD stage: SHARD=i/N writes OUT/maps-i-of-N
SHARD_TAG := $(if $(SHARD),-$(subst /,-of-,$(SHARD)))
MAPS     := $(OUT)/maps$(SHARD_TAG)
PACK     := $(OUT)/pack$(SHARD_TAG)
RUN_NAME := lr$(LR)-lambda$(LAMBDA)-ep$(EPOCHS)$(if $(RUN_TAG),-$(RUN_TAG))
RUN      := $(OUT)/runs/$(RUN_NAME)
EVAL     := $(RUN)/eval
PARAMS   := $(OUT)/.params
THREADS_OPT := $(if $(THREADS),--threads $(THREADS))
# NPROC > 1: lvd-sft under mpirun (one rank per process)
SFT_LAUNCH := $(if $(filter-out 1,$(NPROC)),mpirun -np $(NPROC))

PIPELINE_GOALS := attnmaps pack sft eval sweep pipeline-params
ifneq ($(filter $(PIPELINE_GOALS),$(MAKECMDGOALS)),)
# A parameter file is rewritten only when its text changes (the stamp rules depend on it).
# Under make -n nothing is written: a changed parameter file is only marked out of date.
PIPE_DRY := $(findstring n,$(firstword -$(MAKEFLAGS)))
pipe_param = $(if $(PIPE_DRY),$(if $(shell printf '%s\n' '$(2)' | cmp -s - $(PARAMS)/$(1) 2>/dev/null || echo x),\
	$(eval $(PARAMS)/$(1): pipe-force)),\
	$(shell mkdir -p $(PARAMS) && { printf '%s\n' '$(2)' | cmp -s - $(PARAMS)/$(1) || \
	printf '%s\n' '$(2)' > $(PARAMS)/$(1); }))
pipe-force:
.PHONY: pipe-force
$(call pipe_param,attnmaps$(SHARD_TAG),SD=$(SD) MANIFEST=$(MANIFEST) IMAGES=$(IMAGES) TOKENIZER=$(TOKENIZER) SHARD=$(SHARD) SDFLAGS=$(SDFLAGS))
$(call pipe_param,pack$(SHARD_TAG),VLM=$(VLM) PACKFLAGS=$(PACKFLAGS))
$(call pipe_param,sft-$(RUN_NAME),LR=$(LR) LAMBDA=$(LAMBDA) EPOCHS=$(EPOCHS) LORA=$(LORA) NPROC=$(NPROC) SFTFLAGS=$(SFTFLAGS))
$(call pipe_param,eval-$(RUN_NAME),BENCH=$(BENCH) BENCH_IMAGES=$(BENCH_IMAGES) EVAL_PACK=$(EVAL_PACK) EVALFLAGS=$(EVALFLAGS))
endif

pipe_need = $(if $($(1)),,$(error make $@: $(1)= is required ($(2))))

attnmaps: $(MAPS)/.done
pack: $(PACK)/.done
sft: $(RUN)/.done
eval: $(EVAL)/.done
pipeline-params:
	@cat $(PARAMS)/*

$(MAPS)/.done: $(PARAMS)/attnmaps$(SHARD_TAG) $(MANIFEST)
	$(call pipe_need,SD,an SD 1.x/2.x checkpoint)
	$(call pipe_need,MANIFEST,the JSONL manifest)
	@echo "== attnmaps -> $(MAPS)$(if $(SHARD), (share $(SHARD)))"
	rm -rf $(MAPS)
	$(PIPE_BIN)/sd-attnmap run --sd $(SD) --tokenizer $(TOKENIZER) --manifest $(MANIFEST) --images $(IMAGES) \
		--out $(MAPS) $(if $(SHARD),--shard $(SHARD)) $(THREADS_OPT) $(SDFLAGS)
	@touch $@

$(PACK)/.done: $(PARAMS)/pack$(SHARD_TAG) $(MAPS)/.done
	$(call pipe_need,VLM,the VLM folder)
	@echo "== pack -> $(PACK)"
	rm -rf $(PACK)
	$(PIPE_BIN)/lvd-pack run --manifest $(MANIFEST) --images $(IMAGES) --maps $(MAPS) --model $(VLM) \
		--out $(PACK) $(if $(SHARD),--shard $(SHARD)) $(THREADS_OPT) $(PACKFLAGS)
	@touch $@

$(RUN)/.done: $(PARAMS)/sft-$(RUN_NAME) $(PACK)/.done
	@echo "== sft -> $(RUN)"
	rm -rf $(RUN)
	$(SFT_LAUNCH) $(PIPE_BIN)/lvd-sft run --model $(VLM) --pack $(PACK) --out $(RUN) --lr $(LR) --lambda $(LAMBDA) \
		--epochs $(EPOCHS) --lora $(LORA) $(THREADS_OPT) $(SFTFLAGS)
	@touch $@

$(EVAL)/.done: $(PARAMS)/eval-$(RUN_NAME) $(RUN)/.done
	$(call pipe_need,BENCH,a benchmark JSONL as docs/eval.md describes)
	@echo "== eval -> $(EVAL)"
	rm -rf $(EVAL)
	$(PIPE_BIN)/lvd-eval run --model $(VLM) --adapter $(RUN)/final --bench $(BENCH) --images $(BENCH_IMAGES) \
		--out $(EVAL) $(THREADS_OPT) $(EVALFLAGS)
	$(if $(EVAL_PACK),$(PIPE_BIN)/lvd-eval align --model $(VLM) --adapter $(RUN)/final \
		--aligner $(RUN)/final/aligner.safetensors --pack $(EVAL_PACK) --out $(EVAL)/align $(THREADS_OPT))
	@touch $@

# Every (LR, LAMBDA) of LRS x LAMBDAS through sft and eval (sequentially, each its own run
# folder and stamps), then one comparison table of every run's report.
sweep:
	@set -e; for lr in $(LRS); do for lam in $(LAMBDAS); do \
		$(MAKE) -f $(firstword $(MAKEFILE_LIST)) --no-print-directory $(if $(BENCH),eval,sft) \
		LR=$$lr LAMBDA=$$lam; done; done
	@args=""; for lr in $(LRS); do for lam in $(LAMBDAS); do \
		r=$(OUT)/runs/lr$$lr-lambda$$lam-ep$(EPOCHS)$(if $(RUN_TAG),-$(RUN_TAG)); \
		args="$$args --run lr$$lr-λ$$lam=$$r"; \
		[ -z "$(BENCH)" ] || args="$$args --eval lr$$lr-λ$$lam=$$r/eval"; \
		[ -z "$(EVAL_PACK)" ] || args="$$args --align lr$$lr-λ$$lam=$$r/eval/align"; \
		done; done; $(PIPE_BIN)/lvd-report --out $(OUT)/sweep --title "sweep: LR x LAMBDA" $$args

.PHONY: attnmaps pack sft eval sweep pipeline-params
