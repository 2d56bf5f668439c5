# The threadhost app: one image for the gateway and the actor host (THREADHOST_ROLE picks).
# Its daprd sidecar comes from Dapr's own image (docker-compose.yml) or injector (k8s/).
#   docker build -t threadhost:0.1.0 .
# BASE is any Debian-like image with Python 3.11 and its venv module (./dev images builds
# one from Debian packages). EXTRA_CA_CERTS (PEM) are trusted by pip during the build
# only, for a build behind a TLS-inspecting proxy; the image itself keeps the base's.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ARG EXTRA_CA_CERTS=""
WORKDIR /src
COPY pyproject.toml README.md ./
COPY actors ./actors
COPY gateway ./gateway
COPY threadhost ./threadhost
RUN python3 -m venv /opt/threadhost \
 && if [ -n "$EXTRA_CA_CERTS" ]; then \
      cat /etc/ssl/certs/ca-certificates.crt > /tmp/ca.pem \
      && printf '%s\n' "$EXTRA_CA_CERTS" >> /tmp/ca.pem \
      && export PIP_CERT=/tmp/ca.pem; \
    fi \
 && /opt/threadhost/bin/pip install --no-cache-dir --disable-pip-version-check . \
 && rm -f /tmp/ca.pem

FROM ${BASE}
# The user the pods run as (k8s/base: runAsUser 10001); it owns nothing in the image.
RUN useradd --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      --uid 10001 threadhost
COPY --from=build /opt/threadhost /opt/threadhost
COPY agents /app/agents
ENV PATH=/opt/threadhost/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    THREADHOST_AGENTS_DIRS='["/app/agents"]'
WORKDIR /app
USER 10001
EXPOSE 8000
# Says what it needs and stops, if a setting is missing (threadhost/cli.py serve).
CMD ["python", "-m", "threadhost", "serve", "--host", "0.0.0.0", "--port", "8000"]
