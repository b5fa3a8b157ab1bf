#!/usr/bin/env bash
# The GPU checks in one prepared run (about 5-8 minutes on one GPU), from the repository root:
#     bash benchmarks/gpu.sh
# 1. tests/test_cuda.py: fp16/bf16 channels-last training with exact resume, compile, bands on CUDA, video on
#    CUDA, each kind's export;
# 2. the training-step benchmark (paper size, bf16 and fp16) and the translate benchmark on the GPU.
# A bare PyTorch machine lacks PyAV (videos): wheels placed in .wheels/ (ignored by git; `pip download av
# -d .wheels`) are installed from there, without the network.
set -u
cd "$(dirname "$0")/.."
if [ -d .wheels ] && ! python -c "import av" 2>/dev/null; then
    python -m pip install -q --no-index --find-links .wheels av || echo "PyAV not installed: the video test skips"
fi
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
echo "== tests/test_cuda.py"
timeout 300 python -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -15
echo "== train step, 256 px, paper-size generator"
for p in bf16 fp16 fp32; do
    timeout 120 python benchmarks/train_step.py --device cuda --size 256 --precision "$p" --steps 20 --warmup 5 | tail -1
done
timeout 120 python benchmarks/train_step.py --config configs/cut.yaml --device cuda --precision bf16 --steps 20 --warmup 5 | tail -1
echo "== translate: folder throughput and a 12 MP image in bands"
timeout 240 python benchmarks/translate.py --images 64 2>&1 | tail -1
