#!/usr/bin/env bash
# The GPU checks, as one prepared command for a session that is lent a CUDA machine (issue 13 item 2).
# Run from the repository root there; everything lands in $OUT (or the folder given):
#
#     bash benchmarks/gpu_check.sh [OUT_DIR]
#
# 1. the CUDA tests: the CCA fit and the evaluation GEMM on the GPU against the CPU, the CNN runner in fp16 on
#    the GPU against fp32 on the CPU, the GPU batch size, the sentence encoder on both (tests skip what the
#    machine's packages cannot run);
# 2. bench_extract.py: VGG19 on the CPU and on the GPU (eager fp32 loop there against the suite's paths);
# 3. bench_cca.py at Flickr30k size: our fit on the CPU and on the GPU, and the evaluation on the GPU.
# It needs torch, numpy, scipy, scikit-learn, pandas, pillow, tqdm, tabulate, safetensors, h5py, pyarrow,
# onnx and pytest, and no package of the builtin datasets. About 6-8 minutes on a 16-core machine with an H200;
# each step has its own time limit, so one that hangs does not eat the others' time.
set -u
out=${1:-${OUT:-/tmp/cca_bench_gpu_check}}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$py" -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__); print(torch.cuda.get_device_name(0))"
} 2>&1 | tee "$out/device.txt"

timeout 150 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda_paths.py tests/features/test_imagenet.py \
  tests/features/test_sentence.py -k "cuda or device" -rs 2>&1 | tee "$out/tests.log"

timeout 240 "$py" benchmarks/bench_extract.py --images 256 --rounds 1 --encoders vgg19 \
  --workdir /tmp/cca_bench_extract --out "$out/REPORT_extract_gpu.md" 2>&1 | tee "$out/extract.log"

timeout 240 "$py" benchmarks/bench_cca.py --sizes flickr30k --methods ours,ours_cuda \
  --workdir /tmp/cca_bench_data --out "$out/REPORT_cca_gpu.md" 2>&1 | tee "$out/cca.log"
echo "done: $(ls "$out")"
