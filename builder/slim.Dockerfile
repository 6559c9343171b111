# syntax=docker/dockerfile:1
# podfleet-slim: the image for coordinator endpoints and for callers. It holds podfleet with the
# extras `worker` (the RunPod SDK: a coordinator is a worker whose jobs fan out), `store`
# (SQLAlchemy, psycopg: LOAD_MODE=coordinator writes the rows), `fastapi` and `celery` (the
# caller side: podfleet.integrations) and the CLI; no torch, no Playwright, no Chromium, no model.
# Its jobs coordinate: they submit their chunks to a worker endpoint running the full image
# (`Dockerfile`). Chunks it would run itself need the pipeline's own packages: a flashpoints
# coordinator here is for the two-endpoint layout (docs/deploy.md); pipelines without heavy
# dependencies (synthetic) run here whole.
#
# Same base, same pins (builder/requirements*.txt) as the full image. Build from the repository root:
#   docker build -f builder/slim.Dockerfile -t podfleet-slim .
#   bash builder/build_image.sh --slim          # without Docker (buildah)
FROM python:3.11.17-slim-bookworm

# INFER_FITNESS_CHECK=false: no model to load at start-up (a coordinator never embeds).
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    INFER_FITNESS_CHECK=false \
    PYTHON=python

WORKDIR /app

# 1. The extras' requirements, pinned by builder/requirements*.txt: before the code, so a code
#    change reuses this layer (it changes with pyproject.toml or the pins).
COPY pyproject.toml ./
COPY builder/requirements.txt builder/requirements-dev.txt builder/
COPY builder/image/extras.py builder/image/
RUN python builder/image/extras.py /tmp/slim worker store fastapi celery \
    && pip install --quiet -r /tmp/slim/requirements.txt -c /tmp/slim/constraints.txt \
    && rm -rf /tmp/slim

# 2. The code; podfleet itself (editable, for the `podfleet` command), then the build-time
#    smoke test: a synthetic job through `python -u handler.py` (the CMD), the CLI, and proof
#    that no torch, Playwright or Chromium came in.
COPY . .
RUN pip install --quiet --no-deps --no-build-isolation -e . \
    && bash builder/smoke_test.sh builder/image/slim_test_input.json \
    && podfleet --version \
    && python -c "import importlib.util as u, shutil, sys; heavy = [m for m in ('torch', 'playwright', 'sentence_transformers') if u.find_spec(m)] + [b for b in ('chromium',) if shutil.which(b)]; sys.exit(f'slim image holds {heavy}' if heavy else 0)"

CMD ["python", "-u", "handler.py"]
