#!/bin/sh
# A virtualenv for `vla-data bench lerobot` beside this project's environment (torch 2.13.0 CPU).
#
# lerobot 0.4.4, the newest release for Python 3.11, declares torch<2.11, torchvision<0.26 and
# torchcodec<0.11; letting pip resolve that would replace torch. So the venv sees the main
# environment (--system-site-packages: torch, pyarrow, datasets, av, this package, ...) and gets
# lerobot plus the few packages its LeRobotDataset import path lacks, all with --no-deps:
#   torchcodec 0.13.0  CPU wheel that loads beside torch 2.13.0 (needs FFmpeg's shared libraries)
#   torchvision 0.28.0 only its Python part imports (the PyPI wheel's ops are built for CUDA torch;
#                      vla_data.bench.lerobot.import_torchvision explains the workaround)
#   accelerate, safetensors  imported by lerobot.utils
# Nothing is installed into the main environment.
#
# Usage: sh examples/lerobot_venv.sh [VENV]        (default /work/venv-lerobot)
#        VENV/bin/python -m vla_data bench lerobot --dir /tmp/bench-lerobot
set -eu
VENV=${1:-/work/venv-lerobot}
python -m venv --system-site-packages "$VENV"
"$VENV/bin/pip" install --no-deps lerobot==0.4.4 torchcodec==0.13.0 torchvision==0.28.0 \
    accelerate==1.15.0 safetensors==0.8.0
if ! ldconfig -p | grep -q 'libavcodec\.so'; then
    echo "torchcodec needs FFmpeg's shared libraries; on Debian 12:" >&2
    echo "  apt-get install libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavdevice59 libavfilter8" >&2
    exit 1
fi
"$VENV/bin/python" -c "
import torch
from vla_data.bench.lerobot import import_torchvision
import_torchvision()
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from torchcodec.decoders import VideoDecoder
print('lerobot venv ready, torch', torch.__version__)
"
