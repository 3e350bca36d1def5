# The billstream image that docker-compose.yml builds: the `billstream` CLI is the entrypoint,
# each service picks its command (worker, ingest dext-api, serve push, sandbox ...).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Only what the package needs: the build context also holds local venvs and data folders.
COPY pyproject.toml README.md tenants.example.toml ./
COPY domain ./domain
COPY adapters ./adapters
COPY sandboxes ./sandboxes
COPY streams ./streams
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin billstream \
    && mkdir -p /data \
    && chown billstream /data

USER billstream
# In a container the metrics endpoint must listen beyond loopback for Prometheus to reach it.
ENV BILLSTREAM_DATA_DIR=/data \
    BILLSTREAM_TENANTS_FILE=/app/tenants.example.toml \
    BILLSTREAM_METRICS_HOST=0.0.0.0
VOLUME ["/data"]
EXPOSE 9464 8089
ENTRYPOINT ["billstream"]
CMD ["worker"]
