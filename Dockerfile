# syntax=docker/dockerfile:1
# One image for every bread service; the command picks which one runs:
#   python -m order_svc | pay_svc | bakery_svc | customer_svc
# Every service of servicekit/registry.py has its COPY and its port in EXPOSE below
# (tests/k8s/test_image.py checks both).
# It also carries what the gateway's init containers copy out: Envoy's descriptor set
# (/app/build/bread.pb), the OpenAPI description (/app/build/openapi.json) and the web page
# (/app/web).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: runtime dependencies in a venv, code generated from protos/
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements.txt requirements-dev.txt ./
RUN python -m venv /opt/venv && /opt/venv/bin/pip install -r requirements.txt
# Only the generators, at the versions requirements-dev.txt pins; they stay in this stage.
RUN grep -hE '^(grpcio-tools|mypy-protobuf|googleapis-common-protos)==' \
        requirements-dev.txt requirements.txt > /tmp/generate.txt \
    && pip install -r /tmp/generate.txt
COPY protos protos
COPY scripts/gen_protos.py scripts/gen_openapi.py scripts/
RUN python scripts/gen_protos.py

# ---- runtime
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A numeric, unprivileged user: Kubernetes' runAsNonRoot can verify it.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent bread
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /src/bread bread
COPY --from=build /src/build/bread.pb build/bread.pb
COPY --from=build /src/build/openapi.json build/openapi.json
COPY servicekit servicekit
COPY order_svc order_svc
COPY pay_svc pay_svc
COPY bakery_svc bakery_svc
COPY customer_svc customer_svc
COPY web web
# Byte-code now: the root filesystem is read-only at run time.
RUN python -m compileall -q /app
USER 10001:10001
EXPOSE 8081 8082 8083 8084
CMD ["python", "-m", "order_svc"]
