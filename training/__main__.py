import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from training.cli import main  # noqa: E402

raise SystemExit(main())
