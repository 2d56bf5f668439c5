# The threadhost app: one image for the gateway and the actor host (THREADHOST_ROLE picks).
# Its daprd sidecar comes from Dapr's own image (docker-compose.yml) or injector (k8s/).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY actors ./actors
COPY gateway ./gateway
COPY threadhost ./threadhost
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 threadhost
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY agents /app/agents
ENV PYTHONUNBUFFERED=1 \
    THREADHOST_AGENTS_DIRS='["/app/agents"]'
WORKDIR /app
USER 10001
EXPOSE 8000
CMD ["python", "-m", "uvicorn", "--factory", "threadhost.app:create_app", \
     "--host", "0.0.0.0", "--port", "8000", "--workers", "1"]
