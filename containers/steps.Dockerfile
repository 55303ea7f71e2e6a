# The image of the pipeline steps on the `containers` stack (docs/stacks.md): the base image
# with a venv on PATH (Debian's Python refuses pip into the system, PEP 668, and ZenML's generated Dockerfile
# runs a plain `pip install`) and the project's pinned requirements (requirements.txt, the lock) installed,
# so ZenML adds nothing on top (the code comes from the artifact store): cached while the lock does not change.
# ZenML builds it for every pipeline (pipelines/docker_settings.py); podman caches its layers.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
# uv installs the lock in about a third of pip's time (parallel downloads); byte code compiled as pip does,
# so no step container compiles the libraries it imports.
RUN python3 -m venv /opt/venv && pip install --no-cache-dir uv==0.13.8

COPY requirements.txt /tmp/requirements.txt
RUN uv pip install --no-cache --compile-bytecode -r /tmp/requirements.txt && rm /tmp/requirements.txt
