# A models image: the tfserve image with a model repository baked in, so every node that
# pulls it has the models (no shared storage; versioned and rolled out like code).
#   docker build -f deploy/models.Dockerfile --build-arg BASE=tfserve:1 -t tfserve-models:1 models/
# (the build context is the model repository: models/<name>/<version>/)
ARG BASE=tfserve:latest
FROM ${BASE}
COPY --chown=tfserve:tfserve . /opt/models/
ENV TFSERVE_MODEL_DIR=/opt/models \
    TFSERVE_POLL_INTERVAL_S=0
