# blindsr — set-up, tests, demo, benchmarks and folder runs.
#   make test            install into .venv (first time) and run the test suite
#   make test-fast       the suite without the tests marked slow (subprocess runs, long training, executors)
#   make demo            install and run the demo on a CC0 photo (prints how close the kernel is)
#   make bench-kernel    KernelGAN speed and accuracy -> docs/BENCHMARKS.md (also bench-zssr,
#                        bench-srmd, bench-memory; they need the development data in ../shared)
#   make bench-srmd      SRMD weights vs published figures, kernel adapter, tiling/memory -> docs/BENCHMARKS.md
#   make batch IN=photos OUT=results [SR=zssr] [SCALE=2] [EXECUTOR=serial]   a whole folder
#   make eval DATA=benchmark [SCALE=2] [LIMIT=0]                             the Table-1 evaluation
#   make report OUT=results                                                  rebuild report.html
#   make bench-zssr      ZSSR iteration overhead, run times and PSNR -> docs/BENCHMARKS.md
#   make bench-cuda      on a CUDA machine: estimate, ZSSR, SRMD and pipeline on the GPU vs the CPU -> docs/BENCHMARKS.md
#   make bench-batch     resume after kill -9 and executor equivalence on the real photos, by hash
#   make bench-handoff   the handoff width, chosen on held-out BSD100RK images with SRMD
#   make bench-speed     the default pipeline's speed in seconds and units; the fast ZSSR preset vs kernelgan
#   make bench-speed-steps  cheaper ZSSR training steps (crops, rate, channels) on the tuning images, x2 and x4
#   make bench-speed-steps-seeds  the same rule with three seeds: what the seed alone moves
#   make bench-speed-x4  the gradual x4: the fast preset's x2-stage budget (tuning images), then blind/true/fp32 at x4
#   make bench-speed-allocator  the CPU allocator setting on and off (KernelGAN estimate, ZSSR), child processes
#   make bench-speed-avx2  this CPU as it is and as an AVX2-only one: unit, KernelGAN estimate, demo
#   make bench-kernel-budget  KernelGAN training budgets: cost vs kernel accuracy (tuning and held-out images)
#   make bench-kernel-split   KernelGAN's restarts split over forked processes, side by side with the batched estimate
#   make bench-kernel-split-report  the split estimate on held-out images (BSD100RK 21-100)
#   make bench-kernel-faster  the same KernelGAN kernels in less time (D's patch matrix, the refinement's searches), side by side
#   make bench-kernel-tiles   the same KernelGAN kernels with the tile evidence scored in two halves side by side
#   make bench-kernel-kept    the same KernelGAN kernels with G's kernel composed once per iteration, side by side
#   make bench-kernel-shake   KernelGAN on held-out hand-shake kernels (hard set shake/), beside the paper preset
#   make bench-kernel-phone   the same on held-out noisy, strongly compressed photos (hard set phone/)
#   make bench-kernel-phone-tune  such photos' tuning part: the default with and without its refinement, the paper preset
#   make bench-kernel-sharp   the same on held-out sharpened photos (a camera's unsharp mask before JPEG; hard set sharp/)
#   make bench-kernel-sharp-tune  the same on sharpened photos (a camera's unsharp mask before JPEG), tuning part
#   make bench-sharpening-tune  SR (SRMD, ZSSR) of sharpened photos: the estimate, the true and the bicubic kernel (tuning)
#   make bench-sharpening-report  the same on the held-out sharpened part (hard set sharp/)
#   make bench-light-tune     photos blurred in linear light: estimate and SR with light=encoded and light=linear (tuning)
#   make bench-light-report   the same on the held-out linear-light part (hard set linear/)
#   make bench-hashes BEFORE=REV [AFTER=HEAD]   outputs of pipeline, batch and eval by hash at two revisions
#   make bench-robust    kernel estimates on held-out photos (hard set, BSD100RK 21-100) vs paper, bicubic, baseline
#   make bench-robust-tune  the refinement's narrow-kernel settings and the bicubic kernel's likelihood, tuning images only
#   make bench-robust-shape  held-out images: narrow estimates handed over as Gaussians, against KernelGAN's shape
#   make bench-robust-focus  tuning images: the rule for scoring only the in-focus tiles, before and now
#   make bench-refinement-fallback  tuning images: the bicubic kernel or the unrefined estimate when only the refinement is untrusted
#   make bench-robust-focus-camera  the same rules on the one-camera tuning sets, clean and noisy
#   make bench-table1    the paper's Table 1 on BSD100RK (x2, x4) and the pipeline on the real photos
#   make bench-camera    one kernel per camera (per-image vs averaged vs joint) and blind noise for SRMD
#   make bench-camera-zssr     ZSSR with and without noise on its sons, on the noisy one-camera sets
#   make bench-camera-budgets  the group budget and shape, chosen on the tuning sets
#   make bench-camera-handoff  the joint kernel's handoff width for SRMD, tuning sets only
#   make bench-jpeg-noise      SRMD's noise level on JPEG photos (held-out scenes); -study: where it was chosen;
#                              -hard: on the hard set's compressed photos, true kernels and default estimates;
#                              -zssr: ZSSR's son noise on JPEG photos; -shot: SRMD and the estimate on
#                              photos with a sensor's (brightness-dependent) noise
# PyTorch: TORCH picks the build. The default takes the CPU build this project is developed on;
# on a CUDA machine use e.g. TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126",
# or TORCH=none to keep a torch that is already installed (with VENV_FLAGS=--system-site-packages).

PYTHON ?= python3
VENV ?= .venv
VENV_FLAGS ?=
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED ?= ../shared
DATA ?= $(SHARED)/data/BSD100RK
SCALE ?= 2
SR ?= zssr
EXECUTOR ?= serial
LIMIT ?= 0
ESTIMATORS ?= [gt,kernelgan,bicubic]
SRS ?= [bicubic,zssr,srmd]
# The default kernel estimate before the robustness work (bench-robust runs it side by side).
BASELINE ?= 02761fc
# bench-kernel-budget: the KernelGAN training budgets compared (names in benchmarks/kernel_budget.py).
BUDGETS ?= today (1000 x 4),700 x 4 compressed,700 x 3,500 x 4,500 x 4 compressed,350 x 4 compressed,400 x 5 compressed,350 x 6 compressed,1000 x 2
# bench-kernel-split: the last revision that trained KernelGAN's restarts batched in one process.
SPLIT_BEFORE ?= 5f3d64d
# bench-kernel-faster: the last revision before D's patch matrix copy and the refinement's searches side by side.
FASTER_BEFORE ?= ff62e68
# bench-kernel-tiles: the last revision before the tile evidence scored its tiles side by side.
TILES_BEFORE ?= 16bf5a4
# bench-kernel-kept: the last revision that composed G's kernel twice per iteration.
KEPT_BEFORE ?= 5ecdc1c
# bench-hashes: the revisions compared (results must not change across a change of structure).
BEFORE ?= d5a51cf
AFTER ?= HEAD

.PHONY: install test test-fast demo bench-kernel bench-speed bench-speed-x4 bench-speed-allocator bench-speed-avx2 bench-speed-bf16 bench-speed-steps bench-speed-steps-seeds bench-zssr bench-srmd bench-memory bench-table1 bench-cuda bench-batch bench-handoff bench-hashes bench-kernel-budget bench-kernel-split bench-kernel-split-report bench-kernel-faster bench-kernel-tiles bench-kernel-kept bench-kernel-shake bench-kernel-phone bench-kernel-phone-tune bench-kernel-sharp bench-kernel-sharp-tune bench-sharpening-tune bench-sharpening-report bench-light-tune bench-light-report bench-robust bench-robust-tune bench-robust-shape bench-robust-focus bench-refinement-fallback bench-robust-focus-camera bench-camera bench-camera-zssr bench-camera-budgets bench-camera-handoff bench-jpeg-noise bench-jpeg-noise-study bench-jpeg-noise-hard bench-jpeg-noise-zssr bench-jpeg-noise-shot batch eval report clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	if [ "$(TORCH)" != "none" ]; then $(BIN)/python -m pip install --quiet $(TORCH); fi
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

demo: $(STAMP)
	$(BIN)/python -m blindsr.demo

bench-kernel: $(STAMP)
	$(BIN)/python -m benchmarks.kernel --data $(DATA)

bench-srmd: $(STAMP)
	$(BIN)/python -m benchmarks.srmd_backend --data $(DATA) --pca $(SHARED)/srmd/srmd_pca_matlab.mat

bench-zssr: $(STAMP)
	$(BIN)/python -m benchmarks.zssr_backend --data $(DATA)

bench-memory: $(STAMP)
	BLINDSR_WEIGHTS_SRMD_PCA=$(SHARED)/srmd/srmd_pca_matlab.mat $(BIN)/python -m benchmarks.memory

bench-handoff: $(STAMP)
	BLINDSR_WEIGHTS_SRMD_PCA=$(SHARED)/srmd/srmd_pca_matlab.mat $(BIN)/python -m benchmarks.handoff --data $(DATA)

# On a machine with a CUDA GPU: measure (cuda_out/cuda.json), then record the 'cuda' section.
bench-cuda: $(STAMP)
	BLINDSR_WEIGHTS_SRMD_PCA=$(SHARED)/srmd/srmd_pca_matlab.mat $(BIN)/python -m benchmarks.cuda \
		--data $(DATA) --out cuda_out
	$(BIN)/python -m benchmarks.cuda --record cuda_out/cuda.json

bench-table1: $(STAMP)
	BLINDSR_WEIGHTS_SRMD_PCA=$(SHARED)/srmd/srmd_pca_matlab.mat $(BIN)/python -m benchmarks.table1 \
		--data $(DATA) --real $(SHARED)/data/real

bench-batch: $(STAMP)
	BLINDSR_WEIGHTS_SRMD_PCA=$(SHARED)/srmd/srmd_pca_matlab.mat $(BIN)/python -m benchmarks.batch \
		--input $(SHARED)/data/real

batch: $(STAMP)
	$(BIN)/python -m blindsr batch "input=$(IN)" "output=$(OUT)" sr=$(SR) scale=$(SCALE) executor=$(EXECUTOR)

eval: $(STAMP)
	$(BIN)/python -m blindsr eval "dataset=$(DATA)" scale=$(SCALE) limit=$(LIMIT) \
		"estimators=$(ESTIMATORS)" "srs=$(SRS)" "output=$(or $(OUT),blindsr_eval)"

report: $(STAMP)
	$(BIN)/python -m blindsr report "output=$(OUT)"

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

bench-speed: $(STAMP)
	$(BIN)/python -m benchmarks.speed --data $(DATA)

bench-speed-x4: $(STAMP)
	$(BIN)/python -m benchmarks.speed --data $(DATA) --parts x4

bench-speed-allocator: $(STAMP)
	$(BIN)/python -m benchmarks.allocator --data $(DATA)

bench-speed-steps: $(STAMP)
	$(BIN)/python -m benchmarks.speed --data $(DATA) --parts steps

bench-speed-steps-seeds: $(STAMP)
	$(BIN)/python -m benchmarks.speed --data $(DATA) --parts seeds

bench-speed-bf16: $(STAMP)
	$(BIN)/python -m benchmarks.speed --data $(DATA) --parts bf16 --tune 1-3

bench-speed-avx2: $(STAMP)
	$(BIN)/python -m benchmarks.speed --data $(DATA) --parts isa

bench-kernel-budget: $(STAMP)
	$(BIN)/python -m benchmarks.kernel_budget --set tune=$(DATA):1-20 --candidates "$(BUDGETS)"

# KernelGAN's restarts split over forked processes, side by side with the batched estimate before it.
bench-kernel-split: $(STAMP)
	$(BIN)/python -m benchmarks.hard_set --shared $(SHARED)/data --output hard_set
	$(BIN)/python -m benchmarks.kernel_split --before $(SPLIT_BEFORE) --set $(DATA):1-20 --set hard_set/tune:1-20

# The same kernels in less time, side by side with the revision before the two changes.
bench-kernel-tiles: $(STAMP)
	$(BIN)/python -m benchmarks.hard_set --shared $(SHARED)/data --output hard_set
	$(BIN)/python -m benchmarks.kernel_split --before $(TILES_BEFORE) --set $(DATA):1-10 --set hard_set/tune:1-10 \
		--work bench_out/kernel_tiles --section "kernel-tiles:KernelGAN: the tile evidence side by side" \
		--make-target bench-kernel-tiles \
		--change "tiles in turn|tiles side by side|the tile evidence (the texture check and the refinement's in-focus tiles) scoring all its tiles in one process at {before} and in two halves side by side in two processes at {now} (likelihood.tile_evidence, MIN_SPLIT_TILES); the same numbers bit for bit"

bench-kernel-faster: $(STAMP)
	$(BIN)/python -m benchmarks.kernel_split --before $(FASTER_BEFORE) --set $(DATA):1-10 \
		--work bench_out/kernel_faster --section "kernel-faster:KernelGAN: the same kernels in less time" \
		--make-target bench-kernel-faster \
		--change "F.unfold, searches in turn|strided copy, searches side by side|the discriminator's 7x7 layer reading its patch matrix through F.unfold and a transposed copy at {before} and through one strided copy at {now} (networks.PatchMatrix), and the refinement's two Nelder-Mead starts searching one after another at {before} and side by side in two processes at {now} (likelihood.fit_affine, with NumPy's BLAS on one thread in each: runtime.forked_map); the same numbers bit for bit"

bench-kernel-kept: $(STAMP)
	$(BIN)/python -m benchmarks.kernel_split --before $(KEPT_BEFORE) --set $(DATA):1-10 \
		--work bench_out/kernel_kept --section "kernel-kept:KernelGAN: G's kernel composed once per iteration" \
		--make-target bench-kernel-kept \
		--change "composed twice|composed once|G's kernel composed from its weights in the G step and again, without its graph, in the D step at {before}, and at {now} composed once, in the D step with its graph, and kept for the next G step (G does not change in between: train.KernelGANRun.step); the same numbers bit for bit"

# The same estimate on held-out images (BSD100RK 21-100), after the tuning images' decision.
bench-kernel-split-report: $(STAMP)
	$(BIN)/python -m benchmarks.kernel_budget --set report=$(DATA):21-100 --candidates "today (1000 x 4)" \
		--report-candidates "today (1000 x 4)" \
		--section "kernel-split-report:KernelGAN with the restarts split over processes (held out)" \
		--make-target bench-kernel-split-report

# KernelGAN on the hard set's held-out hand-shake part, beside the paper preset (the part is made first).
bench-kernel-shake: $(STAMP)
	$(BIN)/python -m benchmarks.hard_set --shared $(SHARED)/data --output hard_set
	$(BIN)/python -m benchmarks.kernel_budget --set report=hard_set/shake:1-20 --candidates "today (1000 x 4)" \
		--report-candidates "today (1000 x 4),paper preset" --section "kernel-shake:KernelGAN on hand-shake kernels (held out)" \
		--make-target bench-kernel-shake

# The same on the held-out phone part (noise, then JPEG quality 50-70).
bench-kernel-phone: $(STAMP)
	$(BIN)/python -m benchmarks.hard_set --shared $(SHARED)/data --output hard_set
	$(BIN)/python -m benchmarks.kernel_budget --set report=hard_set/phone:1-20 --candidates "today (1000 x 4)" \
		--report-candidates "today (1000 x 4),paper preset" --section "kernel-phone:KernelGAN on noisy, compressed photos (held out)" \
		--make-target bench-kernel-phone

# The same on the held-out sharpened part (noise, a camera's unsharp mask, then JPEG quality 85-95).
bench-kernel-sharp: $(STAMP)
	$(BIN)/python -m benchmarks.hard_set --shared $(SHARED)/data --output hard_set
	$(BIN)/python -m benchmarks.kernel_budget --set report=hard_set/sharp:1-20 --candidates "today (1000 x 4)" \
		--report-candidates "today (1000 x 4),paper preset" --section "kernel-sharp:KernelGAN on sharpened photos (held out)" \
		--make-target bench-kernel-sharp

# What the default does on noisy, compressed photos, studied on the tuning part phone_tune/.
bench-kernel-phone-tune: $(STAMP)
	$(BIN)/python -m benchmarks.hard_set --shared $(SHARED)/data --output hard_set
	$(BIN)/python -m benchmarks.kernel_budget --set tune=hard_set/phone_tune:1-20 \
		--candidates "today (1000 x 4),today without refinement,paper preset" \
		--section "kernel-phone-tune:KernelGAN on noisy, compressed photos (tuning)" --make-target bench-kernel-phone-tune

# KernelGAN on the hard set's sharpened photos (a camera's unsharp mask before JPEG), tuning part.
bench-kernel-sharp-tune: $(STAMP)
	$(BIN)/python -m benchmarks.hard_set --shared $(SHARED)/data --output hard_set
	$(BIN)/python -m benchmarks.kernel_budget --set tune=hard_set/sharp_tune:1-20 \
		--candidates "today (1000 x 4),today without refinement,paper preset" \
		--section "kernel-sharp-tune:KernelGAN on sharpened photos (tuning)" --make-target bench-kernel-sharp-tune
	$(BIN)/python -m benchmarks.kernel_budget --set tune=hard_set/sharp_tune:1-20 --set tune=hard_set/sharp_tune_plain:1-20 \
		--candidates "today (1000 x 4)" --paired \
		--section "kernel-sharp-tune-plain:The same photos with and without the sharpening (tuning)" --make-target bench-kernel-sharp-tune

# SR of sharpened photos given the default estimate, the true kernel and the bicubic kernel.
bench-sharpening-tune bench-sharpening-report: bench-sharpening-%: $(STAMP)
	$(BIN)/python -m benchmarks.hard_set --shared $(SHARED)/data --output hard_set
	BLINDSR_WEIGHTS_SRMD_PCA=$(SHARED)/srmd/srmd_pca_matlab.mat $(BIN)/python -m benchmarks.sharpening --part $*

# Photos blurred in linear light: the default (light=encoded) against light=linear.
bench-light-tune bench-light-report: bench-light-%: $(STAMP)
	$(BIN)/python -m benchmarks.hard_set --shared $(SHARED)/data --output hard_set
	BLINDSR_WEIGHTS_SRMD_PCA=$(SHARED)/srmd/srmd_pca_matlab.mat $(BIN)/python -m benchmarks.light --part $*

bench-hashes: $(STAMP)
	BLINDSR_WEIGHTS_SRMD_PCA=$(SHARED)/srmd/srmd_pca_matlab.mat $(BIN)/python -m benchmarks.hashes \
		--data $(DATA) --before $(BEFORE) --after $(AFTER)

bench-robust: $(STAMP)
	$(BIN)/python -m benchmarks.hard_set --shared $(SHARED)/data --output hard_set
	$(BIN)/python -m benchmarks.robust --data $(DATA) --hard hard_set/report --baseline $(BASELINE)

bench-robust-tune: $(STAMP)
	$(BIN)/python -m benchmarks.hard_set --shared $(SHARED)/data --output hard_set
	$(BIN)/python -m benchmarks.robust --data $(DATA) --tune hard_set

bench-robust-shape: $(STAMP)
	$(BIN)/python -m benchmarks.hard_set --shared $(SHARED)/data --output hard_set
	$(BIN)/python -m benchmarks.robust --data $(DATA) --hard hard_set/report --shape-study

bench-robust-focus: $(STAMP)
	$(BIN)/python -m benchmarks.hard_set --shared $(SHARED)/data --output hard_set
	$(BIN)/python -m benchmarks.robust --data $(DATA) --focus-study hard_set

bench-refinement-fallback: $(STAMP)
	$(BIN)/python -m benchmarks.hard_set --shared $(SHARED)/data --output hard_set
	$(BIN)/python -m benchmarks.refinement_fallback --data $(DATA) --hard-set hard_set

# The one-camera tuning sets are made by benchmarks/camera.py (bench-camera makes them; so does this).
bench-robust-focus-camera: $(STAMP)
	$(BIN)/python -m benchmarks.camera --shared $(SHARED)/data --sets tune,tune_noise --make-sets
	$(BIN)/python -m benchmarks.robust --data $(DATA) --focus-study hard_set --focus-camera bench_out/camera/sets

bench-camera: $(STAMP)
	BLINDSR_WEIGHTS_SRMD_PCA=$(SHARED)/srmd/srmd_pca_matlab.mat $(BIN)/python -m benchmarks.camera --shared $(SHARED)/data --retime

bench-camera-zssr bench-camera-budgets bench-camera-handoff: bench-camera-%: $(STAMP)
	BLINDSR_WEIGHTS_SRMD_PCA=$(SHARED)/srmd/srmd_pca_matlab.mat $(BIN)/python -m benchmarks.camera --shared $(SHARED)/data --part $*

bench-jpeg-noise: $(STAMP)
	BLINDSR_WEIGHTS_SRMD_PCA=$(SHARED)/srmd/srmd_pca_matlab.mat $(BIN)/python -m benchmarks.jpeg_noise --shared $(SHARED)/data --part check

bench-jpeg-noise-study: $(STAMP)
	BLINDSR_WEIGHTS_SRMD_PCA=$(SHARED)/srmd/srmd_pca_matlab.mat $(BIN)/python -m benchmarks.jpeg_noise --shared $(SHARED)/data --part study

bench-jpeg-noise-zssr: $(STAMP)
	BLINDSR_WEIGHTS_SRMD_PCA=$(SHARED)/srmd/srmd_pca_matlab.mat $(BIN)/python -m benchmarks.jpeg_noise --shared $(SHARED)/data --part zssr

bench-jpeg-noise-shot: $(STAMP)
	BLINDSR_WEIGHTS_SRMD_PCA=$(SHARED)/srmd/srmd_pca_matlab.mat $(BIN)/python -m benchmarks.jpeg_noise --shared $(SHARED)/data --part shot

bench-noise-correction: $(STAMP)
	$(BIN)/python -m benchmarks.hard_set --shared $(SHARED)/data --output hard_set
	$(BIN)/python -m benchmarks.noise_correction --set 'phone_tune=hard_set/phone_tune:1-20' \
		--set 'hard report=hard_set/report:1-12' --set 'phone=hard_set/phone:1-20' --set 'BSD100RK=$(DATA):21-100'

bench-jpeg-noise-hard: $(STAMP)
	$(BIN)/python -m benchmarks.hard_set --shared $(SHARED)/data --output hard_set
	BLINDSR_WEIGHTS_SRMD_PCA=$(SHARED)/srmd/srmd_pca_matlab.mat $(BIN)/python -m benchmarks.jpeg_noise --shared $(SHARED)/data --part hard
