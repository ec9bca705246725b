# tfserve image: the service and the training command; models come from a volume at /models.
#   docker build -t tfserve .                         CPU (tensorflow-cpu)
#   docker build --build-arg FLAVOUR=gpu -t tfserve:gpu .   TensorFlow with CUDA (run with GPUs)
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG FLAVOUR=cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app app
COPY training training
# The runtime deps come from pyproject (grpcio, grpcio-health-checking, grpcio-reflection and
# tritonclient[grpc] for the gRPC server among them); tensorflow-serving-api (TF Serving's
# protos: its gRPC services, model config, warm-up records) without deps: it requires the
# `tensorflow` distribution by name, and tensorflow-cpu is the same package under another one
RUN /opt/venv/bin/pip install --no-compile ".[${FLAVOUR}]" \
 && /opt/venv/bin/pip install --no-compile --no-deps "tensorflow-serving-api==2.21.0" \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
 && rm -rf /opt/venv/lib/python*/site-packages/tensorflow/include

FROM ${PYTHON_IMAGE}
RUN useradd --create-home --uid 10001 --user-group tfserve \
 && mkdir -p /models /keras && chown tfserve:tfserve /models /keras
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    KERAS_HOME=/keras \
    TFSERVE_MODEL_DIR=/models \
    TFSERVE_PORT=8089 \
    TFSERVE_GRPC_PORT=8500 \
    TFSERVE_WORKERS=auto
USER tfserve
WORKDIR /home/tfserve
# HTTP, and gRPC (TF Serving's port; TFSERVE_GRPC_PORT=0 turns it off)
EXPOSE 8089 8500
VOLUME ["/models"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=180s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8089/readyz', timeout=2)"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "app"]
