"""Every setting of the service, from the environment (prefix TFSERVE_) or a `.env` file.

No other module reads the environment. Per-model batching overrides are JSON, e.g.
`TFSERVE_MODEL_OVERRIDES='{"inception_v3": {"max_batch_size": 8, "batch_timeout_ms": 5}}'`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, PositiveFloat, PositiveInt, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.workers import available_cpus


class BatchingOverride(BaseModel):
    """Batching knobs that one model may set differently from the defaults."""

    max_batch_size: PositiveInt | None = None
    batch_timeout_ms: float | None = Field(None, ge=0)
    max_queue_rows: PositiveInt | None = None
    batching_enabled: bool | None = None
    max_queue_delay_ms: float | None = Field(None, ge=0)


class BatchingPolicy(BaseModel):
    """The knobs one batcher runs with, after overrides."""

    enabled: bool
    max_batch_size: int
    batch_timeout_ms: float
    max_queue_rows: int
    max_queue_delay_ms: float


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TFSERVE_", env_file=".env", extra="ignore",
                                      protected_namespaces=())

    model_dir: Path = Field(Path("models"), description="the model repository")
    host: str = Field("0.0.0.0", description="address to listen on")
    port: int = Field(8089, ge=1, le=65535, description="port (tfdeploy's default)")
    grpc_port: int = Field(
        8500, ge=0, le=65535, description="gRPC port (TF Serving's); TF Serving's "
                                          "PredictionService and ModelService and the Open "
                                          "Inference Protocol's GRPCInferenceService (0: off)")
    grpc_max_message_bytes: PositiveInt = Field(
        64 * 1024 * 1024, description="largest gRPC message received or sent "
                                      "(RESOURCE_EXHAUSTED past it)")
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate: serve HTTPS and gRPC over TLS (with tls_key_file)")
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file")
    default_model: str = Field("mnist", description="model of the /{signature}/predict routes")
    batching_enabled: bool = Field(True, description="batch concurrent requests together")
    max_batch_size: PositiveInt = Field(64, description="rows per model call at most")
    batch_timeout_ms: float = Field(
        2.0, ge=0, description="how long the oldest request may wait for a batch to fill")
    max_queue_rows: PositiveInt = Field(
        4096, description="rows waiting per signature before new requests get 503")
    max_queue_delay_ms: float = Field(
        0, ge=0, description="admit a request only if its estimated wait in the queue stays "
                             "under this (0: three full batches at the measured rate, at "
                             "least 250 ms); a shorter target also caps the rows per call")
    model_overrides: dict[str, BatchingOverride] = Field(
        default_factory=dict, description="per-model batching knobs (JSON)")
    warmup_full_batch: bool = Field(
        False, description="warm each batched signature up with one full batch too, so a "
                           "version takes at load the memory its largest call will hold "
                           "(TensorFlow keeps it) instead of at the first burst")
    request_timeout_s: PositiveFloat = Field(
        30.0, description="deadline of one prediction request (504 past it)")
    max_body_bytes: PositiveInt = Field(
        64 * 1024 * 1024, description="largest request body accepted (413 past it)")
    max_instances: PositiveInt = Field(
        1024, description="instances in one request at most (400 past it)")
    max_images_per_upload: PositiveInt = Field(32, description="files in one upload at most")
    max_image_pixels: PositiveInt = Field(
        25_000_000, description="width x height of one image input at most (413 past it)")
    api_key: SecretStr | None = Field(
        None, description="if set, model routes need `Authorization: Bearer <key>` or "
                          "`X-API-Key: <key>` (401 otherwise)")
    cors_origins: list[str] = Field(
        default_factory=list, description='origins allowed cross-site (JSON, e.g. ["*"])')
    max_versions: int = Field(
        2, ge=0, description="versions served per model, the highest ones (0: all on disk)")
    model_config_file: Path | None = Field(
        None, validation_alias="TFSERVE_MODEL_CONFIG",
        description="a TF Serving model config file (text proto): the models it lists, "
                    "their base paths, version policies and labels, instead of model_dir")
    model_config_poll_s: float = Field(
        0.0, ge=0, description="how often to read the model config file again: models "
                               "added or removed there are loaded or unloaded (0: never)")
    poll_interval_s: float = Field(
        5.0, ge=0, description="how often to look for new model versions (0: never)")
    inference_threads: PositiveInt = Field(
        4, description="threads that run model calls (TensorFlow parallelises within each)")
    workers: PositiveInt | Literal["auto"] = Field(
        1, description="server processes on the one port, each loading every model; "
                       "'auto': one per available core (the container's CPU limit)")
    intra_op_threads: int = Field(
        0, ge=0, description="TensorFlow threads within one op (0: the cores divided "
                             "among the workers; TensorFlow's default with one worker)")
    inter_op_threads: int = Field(
        0, ge=0, description="TensorFlow ops run at once (0: as intra_op_threads)")
    multiproc_dir: Path | None = Field(
        None, validation_alias="PROMETHEUS_MULTIPROC_DIR",
        description="folder the workers share (metrics, readiness); `python -m app` makes "
                    "a temporary one when workers > 1")
    breaker_failures: int = Field(
        5, ge=0, description="failed batches in a row that open a version's circuit breaker "
                             "(503 at once until a probe succeeds; 0: no breaker)")
    breaker_cooldown_s: PositiveFloat = Field(
        10.0, description="how long an open breaker refuses before one probe batch runs")
    request_log: str | None = Field(
        None, description="a file to append one JSON line per sampled prediction request "
                          "to, or `stdout` (unset: no request log)")
    request_log_sample: float = Field(
        1.0, ge=0, le=1, description="share of prediction requests written to the request log")
    request_log_payloads: bool = Field(
        False, description="also log inputs and outputs (each array cut to its dtype and "
                           "shape past 4 KiB)")
    request_log_max_bytes: int = Field(
        0, ge=0, description="rotate the request log to `<file>.1` past this size (0: never; "
                             "SIGHUP reopens it for logrotate)")
    monitoring: bool = Field(
        True, description="monitor what each signature sees and answers against its training "
                          "profile (GET /models/{model}/monitoring, tfserve_drift_* metrics)")
    monitoring_sample_rate: float = Field(
        1.0, ge=0, le=1, description="share of model calls (batches) folded into monitoring")
    monitoring_window_rows: PositiveInt = Field(
        10_000, description="rows in the sliding window drift is measured on (the latest)")
    monitoring_window_s: float = Field(
        3600.0, ge=0, description="and rows no older than this (0: no time limit)")
    monitoring_min_rows: PositiveInt = Field(
        500, description="rows a window needs before it is rated (state 'too few rows' before)")
    drift_watch_psi: PositiveFloat = Field(
        0.1, description="a summary's PSI from which its state is 'watch'")
    drift_psi: PositiveFloat = Field(
        0.25, description="a summary's PSI from which its state is 'drift'")
    confidence_floor: float = Field(
        0.5, ge=0, le=1, description="answers whose top score is under this count as "
                                     "low-confidence (for models without a training profile)")
    shutdown_grace_s: PositiveFloat = Field(
        30.0, description="on SIGTERM, how long in-flight requests may take to finish")
    direct_predict: bool = Field(
        True, description="serve the predict routes past FastAPI's router (same "
                          "handlers, less overhead per request)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")
    log_format: Literal["text", "json"] = Field(
        "text", description="text, or json: one JSON object per line")

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TLS needs both TFSERVE_TLS_CERT_FILE and TFSERVE_TLS_KEY_FILE")
        return self

    @model_validator(mode="after")
    def _drift_thresholds(self) -> Settings:
        if self.drift_watch_psi > self.drift_psi:
            raise ValueError("TFSERVE_DRIFT_WATCH_PSI must not exceed TFSERVE_DRIFT_PSI")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None

    @property
    def worker_count(self) -> int:
        return available_cpus() if self.workers == "auto" else self.workers

    def tf_threads(self) -> tuple[int, int]:
        """TensorFlow's (intra-op, inter-op) pool sizes, 0 meaning TensorFlow's default (every
        core): N workers share the cores instead of each claiming all of them."""
        workers = self.worker_count
        share = max(1, available_cpus() // workers) if workers > 1 else 0
        intra = self.intra_op_threads or share
        return intra, self.inter_op_threads or intra

    def batching_for(self, model: str) -> BatchingPolicy:
        override = self.model_overrides.get(model, BatchingOverride())

        def pick(name: str):
            value = getattr(override, name)
            return getattr(self, name) if value is None else value

        return BatchingPolicy(enabled=pick("batching_enabled"),
                              max_batch_size=pick("max_batch_size"),
                              batch_timeout_ms=pick("batch_timeout_ms"),
                              max_queue_rows=pick("max_queue_rows"),
                              max_queue_delay_ms=pick("max_queue_delay_ms"))


@lru_cache
def get_settings() -> Settings:
    return Settings()
