# The export worker: builds dataset exports (COCO, YOLO, Parquet) requested through the API.
# No model stack, but pycocotools, pyarrow and scikit-image (the `products` extra).
#   docker build -f ops/docker/exporter.Dockerfile -t modomo-exporter .
#   docker run --env-file .env modomo-exporter
# Also runs golden-set evaluations: docker run ... modomo-exporter modomo eval --golden ...
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MODOMO_LOG_FORMAT=json

WORKDIR /app
COPY pyproject.toml README.md ./
COPY modomo ./modomo
COPY migrations ./migrations
RUN pip install --no-cache-dir '.[products]' \
    && useradd --create-home --uid 10001 modomo
USER modomo

CMD ["modomo", "exporter"]
