#!/usr/bin/env bash
# The GPU checks, as one prepared command for a session that is lent a CUDA machine (issues 13, 29).
# Run from the repository root there; everything lands in $OUT (or the folder given), summed up in ONE report,
# $OUT/REPORT_gpu.md:
#
#     bash benchmarks/gpu_check.sh [OUT_DIR]          # on the GPU machine (under 8 minutes: each step has a limit)
#     bash benchmarks/gpu_check.sh --dry-run [OUT_DIR]  # anywhere: CPU only, small sizes, the same steps
#
# 1. the CUDA tests (at most 110 s): the CCA fit and the evaluation GEMM on the GPU against the CPU, the CNN
#    runner in fp16 against fp32, the sentence encoder on both (tests skip what the machine's packages cannot run);
# 2. bench_gpu.py (at most 240 s): the moments pass of cca/kcca/ridge/procrustes/pls, the CCA solve, the ridge,
#    procrustes and pls fits, the COCO-5k-size evaluation (ranks must equal the CPU's) and a dcca epoch, each on
#    the CPU and on the GPU, with how far the results are apart;
# 3. bench_extract.py (at most 100 s): VGG19 extraction on the CPU and on the GPU.
# It needs torch, numpy, scipy, scikit-learn, pandas, pillow, tqdm, tabulate, safetensors, h5py, pyarrow,
# onnx and pytest, and no package of the builtin datasets.
set -u
dry=""
if [ "${1:-}" = "--dry-run" ]; then dry="--dry-run"; shift; fi
out=${1:-${OUT:-/tmp/cca_bench_gpu_check}}
mkdir -p "$out"
# a reused folder must not lend an earlier run's numbers to a step that fails or times out in this one
rm -f "$out/REPORT_gpu.md" "$out/REPORT_gpu_paths.md" "$out/REPORT_extract_gpu.md"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
start=$(date +%s)
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi"
  "$py" -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__); print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
} > "$out/device.txt" 2>&1

if [ -z "$dry" ]; then
  timeout 110 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda_paths.py tests/features/test_imagenet.py \
    tests/features/test_sentence.py -k "cuda or device" -rs > "$out/tests.log" 2>&1
else  # the CUDA tests' code on the CPU; the other two files' CUDA tests skip, but are collected (imports)
  CCA_BENCH_TEST_DEVICE=cpu timeout 110 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda_paths.py \
    tests/features/test_imagenet.py tests/features/test_sentence.py -k "cuda or device" -rs > "$out/tests.log" 2>&1
fi
echo "tests exit $?" >> "$out/tests.log"

timeout 240 "$py" benchmarks/bench_gpu.py $dry --out "$out/REPORT_gpu_paths.md" > "$out/paths.log" 2>&1
echo "bench_gpu exit $?" >> "$out/paths.log"

images=128
if [ -n "$dry" ]; then images=4; fi  # the dry run: the same script on 4 images, CPU rows only
timeout 100 "$py" benchmarks/bench_extract.py --images $images --rounds 1 --encoders vgg19 \
  --workdir /tmp/cca_bench_extract --out "$out/REPORT_extract_gpu.md" > "$out/extract.log" 2>&1
echo "bench_extract exit $?" >> "$out/extract.log"

status() {  # the last line of a step's log ("<step> exit N"), said in words when the step did not finish
  local line
  line=$(tail -n 1 "$1")
  case "$line" in
    *" exit 0") echo "$line" ;;
    *" exit 124") echo "$line: TIMED OUT (its time limit ended it; rows above are those finished before)" ;;
    *) echo "$line: FAILED (its log: $1)" ;;
  esac
}

{
  echo "# GPU check ($(date -u +%Y-%m-%dT%H:%MZ)${dry:+, DRY RUN: CPU only, small sizes})"
  echo; echo '```'; cat "$out/device.txt"; echo '```'
  echo; echo "## CUDA tests"; echo; echo '```'; tail -n 15 "$out/tests.log"; echo '```'
  echo; sed 's/^# /## /' "$out/REPORT_gpu_paths.md" 2>/dev/null || { echo "## bench_gpu.py failed"; tail -n 20 "$out/paths.log"; }
  echo; status "$out/paths.log"
  if [ -f "$out/REPORT_extract_gpu.md" ]; then echo; sed 's/^# /## /' "$out/REPORT_extract_gpu.md"
  else echo; echo "## bench_extract.py failed"; echo; echo '```'; tail -n 20 "$out/extract.log"; echo '```'; fi
  echo; status "$out/extract.log"
  echo; echo "Wall time $(( $(date +%s) - start )) s."
} > "$out/REPORT_gpu.md"
echo "report: $out/REPORT_gpu.md ($(ls "$out" | tr '\n' ' '))"
