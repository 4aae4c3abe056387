# The API (with the review app it serves at /app) and the projectors (one image, two start
# commands): no model stack.
#   docker build -f ops/docker/api.Dockerfile -t modomo-api .
#   docker run -p 8080:8080 --env-file .env modomo-api                 # the API
#   docker run --env-file .env modomo-api modomo project               # the projectors
# Both listen beyond loopback, so they refuse to start with a built-in secret: set
# MODOMO_JWT_SECRET, MODOMO_S3_SECRET_ACCESS_KEY and a MODOMO_REDIS_URL with a password.
# /metrics answers MODOMO_METRICS_NETWORKS (loopback by default) or MODOMO_METRICS_TOKEN.

# The review app, built into static files (its generated API types are committed).
FROM node:20-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web ./
RUN npm run build

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    MODOMO_API_HOST=0.0.0.0 MODOMO_API_PORT=8080 MODOMO_METRICS_HOST=0.0.0.0 \
    MODOMO_LOG_FORMAT=json \
    MODOMO_WEB_DIR=/app/web

WORKDIR /app
COPY pyproject.toml README.md ./
COPY modomo ./modomo
COPY migrations ./migrations
COPY --from=web /web/dist ./web
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 modomo
USER modomo

EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/health').status != 200)"
# Migrations first (a no-op when up to date), then the API.
CMD ["sh", "-c", "modomo migrate && exec modomo api"]
