# The GPU worker for Runpod: CUDA torch, the model stack, and a start script that pulls the
# weights once (into a network volume at MODOMO_MODEL_DIR), warms up and consumes.
#   docker build -f ops/docker/worker.Dockerfile -t modomo-worker .
# Its /health, /warmup and /metrics listen on every interface here (Runpod's proxy and the
# scraper reach them), so the worker refuses to start without MODOMO_WORKER_TOKEN (for
# POST /warmup), its own MODOMO_S3_SECRET_ACCESS_KEY and MODOMO_JWT_SECRET, and a Redis
# URL with a password; set MODOMO_METRICS_TOKEN for the scraper.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 \
    MODOMO_MODEL_DIR=/runpod-volume/modomo-models MODOMO_MODEL_PROFILE=real \
    MODOMO_WORKER_HTTP_PORT=8090 MODOMO_WORKER_HTTP_HOST=0.0.0.0 MODOMO_LOG_FORMAT=json

RUN apt-get update && apt-get install -y --no-install-recommends \
        python3.12 python3.12-venv python3.12-dev build-essential libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && python3.12 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
# The CUDA build of torch first, then sam2 built against it without build isolation.
RUN pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1 setuptools wheel \
    && SAM2_BUILD_CUDA=0 pip install --no-cache-dir --no-build-isolation sam2==1.1.0
COPY pyproject.toml README.md ./
COPY modomo ./modomo
RUN pip install --no-cache-dir ".[gpu]"
COPY ops/runpod/start.sh /start.sh

EXPOSE 8090
CMD ["/start.sh"]
