# hf_lodc: condense a Hub image dataset, evaluate it, publish it (entrypoint: recipes/condense.py).
#
# CPU image (default):
#   docker build -t hf_lodc .
# CUDA image: a base that already has a CUDA build of torch, so the CPU wheel step is a no-op:
#   docker build -t hf_lodc:cuda \
#     --build-arg BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime \
#     --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 .
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Where torch comes from: the CPU wheel index keeps the image ~1 GB smaller than the default CUDA wheels.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/data/hf \
    HF_LODC_CACHE=/data/hf_lodc \
    HF_HUB_DISABLE_TELEMETRY=1

WORKDIR /app

# torch first, from the index that matches the base image (skipped when the base already has torch >= 2.2)
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX}" "torch>=2.2" "torchvision>=0.17"

COPY pyproject.toml README.md ./
COPY hf_lodc ./hf_lodc
RUN pip install --no-cache-dir .

COPY recipes ./recipes

RUN useradd --create-home --uid 1000 lodc && mkdir -p /data && chown lodc /data
USER 1000
VOLUME ["/data"]

# e.g. docker run --rm -e HF_TOKEN -v "$PWD/runs:/data/runs" hf_lodc \
#        --dataset ylecun/mnist --method lodm --ipc 1 --output-dir /data/runs/mnist --push-to-hub you/mnist-lodm
ENTRYPOINT ["accelerate", "launch", "recipes/condense.py"]
CMD ["--help"]
