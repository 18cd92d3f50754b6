# issue 15 device run (gpu-bench): GPU tests + checkpoint builds in parallel, then vs_comfyui within a fixed budget
set -o pipefail
T0=$(date +%s); BUDGET=${BUDGET:-565}
el() { echo $(( $(date +%s) - T0 )); }
pip install -q --no-index --no-deps --target /tmp/site ../whl/*.whl 2>&1 | grep -v WARNING | tail -2
export PYTHONPATH=/tmp/site:$PWD:$PWD/../comfyrun/stubs PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/inductor
D=$(nvidia-smi --query-gpu=name --format=csv,noheader | tr ' ' _)-$(date -u +%F)-d
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; python -c "import torch; print(torch.__version__)"
M=/tmp/vs-comfyui/models; mkdir -p $M/checkpoints $M/controlnet
B="import sys; sys.path.insert(0, '.'); from pathlib import Path; from bench.sd15_gpu import *;"
( python -c "$B build_sd15(Path('$M/checkpoints/sd15-random.safetensors'))" > $OUT/build-$D.log 2>&1 ) &
P1=$!
( python -c "$B build_random_checkpoint(Path('$M/checkpoints/sdxl-random.safetensors'), 'sdxl')" > /tmp/b2.log 2>&1 ) &
P2=$!
( python -c "$B build_controlnet(Path('$M/controlnet/cn0.safetensors'), 'original')" > /tmp/b3.log 2>&1 ) &
P3=$!
timeout 150 python -m pytest -q -rA -p no:cacheprovider -m "" tests/diffusion/test_gpu_fast_path.py tests/diffusion/test_controlnet_graphs.py tests/diffusion/test_unet_compile.py -k cuda --durations=6 2>&1 | grep -v "should be kept in float32" | tee $OUT/gpu_tests-$D.log | tail -15
echo "tests done at $(el) s"
wait $P1 $P2 $P3; cat /tmp/b2.log /tmp/b3.log >> $OUT/build-$D.log; tail -3 $OUT/build-$D.log; ls -la $M/*/
echo "builds done at $(el) s"
BT=$(( BUDGET - $(el) )); TL=$(( BT - 45 )); CW=$(( TL - 250 )); [ $CW -lt 60 ] && CW=60
echo "bench: timeout $BT s, time limit $TL s, compile wait $CW s"
timeout $BT python bench/vs_comfyui.py --comfy ../comfyrun/comfy --reps 4 --time-limit $TL --compile-wait $CW --compile-models sd15 --out $OUT --tag d 2>&1 | grep --line-buffered -v "it/s]" | tee $OUT/vs_comfyui-$D.log | tail -60
echo "all done at $(el) s"; ls $OUT
