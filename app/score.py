"""Offline scoring: `python -m app.score --model cifar10 PATH... [-o out.csv]`.

Images (.jpg .jpeg .png .gif .bmp .webp, or folders of them) go to the model's `predict_image`
signature; reviews (.txt: one per line; .csv: the `text` column, else the first) go to
`predict_text`. A folder contributes its images, or its texts when it has no images. The
SavedModel is loaded exactly as the server loads it (app.models.loader); `--url` sends the same
inputs to a running server's upload routes instead. Writes one row per input, JSONL or CSV
(by the output's extension; JSONL on stdout by default), with the signature's summary
outputs (`--probabilities`: every output), keys in a stable order: `source`, then the outputs
sorted by name, then `warning` when the export carries one (random weights, say), which is
also printed on stderr.
(`python -m app.batch` is the same command under its former name.)
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"}
TEXT_SUFFIXES = {".txt", ".csv"}


def collect(paths: list[Path]) -> tuple[str, list[tuple[str, object]]]:
    """(signature, [(source, value)]): image bytes or review strings, never both."""
    items: list[tuple[str, object]] = []
    kinds = set()
    for path in paths:
        if not path.exists():
            raise SystemExit(f"error: {path} does not exist")
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        if path.is_dir():  # a folder holds images (a stray .txt beside them is not a review)
            images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
            files = images or files
        for file in files:
            suffix = file.suffix.lower()
            if suffix in IMAGE_SUFFIXES:
                kinds.add("predict_image")
                items.append((str(file), file.read_bytes()))
            elif suffix in TEXT_SUFFIXES:
                kinds.add("predict_text")
                items.extend(_texts(file))
            elif not path.is_dir():
                raise SystemExit(f"error: {file}: not an image ({', '.join(IMAGE_SUFFIXES)}) "
                                 "nor a .txt/.csv file of texts")
    if len(kinds) != 1:
        raise SystemExit("error: give either images or texts" if kinds else
                         "error: no images or texts found")
    return kinds.pop(), items


def _texts(file: Path) -> Iterator[tuple[str, str]]:
    with file.open(newline="", encoding="utf-8") as handle:
        if file.suffix.lower() == ".csv":
            reader = csv.DictReader(handle)
            column = "text" if "text" in (reader.fieldnames or []) else reader.fieldnames[0]
            for number, row in enumerate(reader, start=2):
                yield f"{file}:{number}", row[column]
        else:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield f"{file}:{number}", line.rstrip("\n")


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class LocalModel:
    """The model's highest version, loaded and called as the server does."""

    def __init__(self, model_dir: Path, model: str):
        from app.models import loader
        from app.models.repository import scan
        from app.models.servable import export_warning

        if not model_dir.is_dir():
            raise SystemExit(f"error: the models folder {model_dir.resolve()} does not exist: "
                             "pass --models-dir (make serve trains into models/)")
        versions = scan(model_dir).get(model)
        if not versions:
            raise SystemExit(f"error: no versions of {model!r} in {model_dir}")
        self.version = loader.load(model_dir / model / str(versions[-1]))
        found = export_warning(self.version.card, self.version.training_metrics)
        self.warning = f"{model}/{versions[-1]}: {found}" if found else None

    def predict(self, signature: str, values: list, full: bool) -> list[dict]:
        import numpy as np

        from app.codecs import rest

        info = self.version.signatures.get(signature)
        if info is None:
            raise SystemExit(f"error: the model has no {signature!r} signature")
        (input_name,) = info.inputs
        array = np.array([v.encode() if isinstance(v, str) else v for v in values], object)
        outputs = self.version.runners[signature]({input_name: array})
        return rest.encode_rows(outputs if full else info.summary(outputs), len(values),
                                  named=True)


class RemoteModel:
    """The same inputs through a running server's upload routes."""

    def __init__(self, url: str, model: str):
        import httpx

        self.client = httpx.Client(base_url=url.rstrip("/"), timeout=120)
        self.model = model
        self.warning: str | None = None  # from the answers' Warning header

    def predict(self, signature: str, values: list, full: bool) -> list[dict]:
        params = {"probabilities": "true"} if full else {}
        if signature == "predict_image":
            files = [("file", (f"{i}", v)) for i, v in enumerate(values)]
            response = self.client.post(f"/models/{self.model}/predict/image", files=files,
                                        params=params)
        else:
            response = self.client.post(f"/models/{self.model}/predict/text",
                                        json={"texts": values}, params=params)
        if response.status_code != 200:
            raise SystemExit(f"error: {response.json().get('error', response.text)}")
        if "warning" in response.headers:  # 299 tfserve "<text>"
            self.warning = response.headers["warning"].partition('"')[2].rstrip('"')
        dropped = ("file", "text")
        return [{k: v for k, v in row.items() if k not in dropped}
                for row in response.json()["predictions"]]


def write(rows: list[dict], output: Path | None) -> None:
    """JSONL (orjson writes the numpy outputs as they are), or CSV with JSON cells."""
    from app.codecs.rest import dumps

    if output is None or output.suffix.lower() != ".csv":
        handle = output.open("w") if output else sys.stdout
        for row in rows:
            handle.write(dumps(row).decode() + "\n")
        if output:
            handle.close()
        return
    with output.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: v if isinstance(v, str) else dumps(v).decode()
                             for k, v in row.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.score",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("paths", nargs="+", type=Path, help="files or folders")
    parser.add_argument("-o", "--output", type=Path, help="out.csv or out.jsonl (default: "
                        "JSONL on stdout)")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--url", help="score through this server instead of in-process")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--probabilities", action="store_true",
                        help="also write the full probabilities vector")
    args = parser.parse_args(argv)
    signature, items = collect(args.paths)
    model = RemoteModel(args.url, args.model) if args.url else LocalModel(args.models_dir,
                                                                          args.model)
    rows = []
    with tqdm(total=len(items), unit="input", file=sys.stderr) as progress:
        for chunk in _chunks(items, args.batch_size):
            results = model.predict(signature, [value for _, value in chunk],
                                    args.probabilities)
            for (source, _), result in zip(chunk, results, strict=True):
                rows.append(stable_row(source, result, model.warning))
            progress.update(len(chunk))
    if model.warning:
        print(f"WARNING: {model.warning}", file=sys.stderr)
    write(rows, args.output)
    return 0


def stable_row(source: str, result: dict, warning: str | None) -> dict:
    """The same keys in the same order on every run, whatever order the outputs came in."""
    row = {"source": source, **{k: result[k] for k in sorted(result)}}
    if warning:
        row["warning"] = warning
    return row


if __name__ == "__main__":
    raise SystemExit(main())
