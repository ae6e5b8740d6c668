"""A model server speaking the KServe v1 inference protocol over HTTP, for integration testing.

    python -m aiact.serving --model-dir DIR [--host 127.0.0.1] [--port 0]

prints one JSON line ``{"event": "listening", "port": N}`` once it accepts requests.
Routes: ``GET /v1/models/NAME`` (readiness), ``GET /v1/models/NAME/metadata`` (input contract),
``POST /v1/models/NAME:predict`` with ``{"instances": [{column: value, ...}, ...]}``.
"""

from __future__ import annotations

import argparse
import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd

from aiact.model_package import ModelPackage, load_model_package


class BadRequest(ValueError):
    """The request breaks the model's input contract."""


def model_metadata(package: ModelPackage) -> dict[str, Any]:
    """The input/output contract the server publishes."""
    transform = package.transform
    inputs: list[dict[str, Any]] = [{"name": n, "datatype": "FP64"} for n in transform.numeric]
    inputs += [
        {"name": name, "datatype": "BYTES", "vocabulary": vocabulary}
        for name, vocabulary in transform.categorical.items()
    ]
    return {
        "name": package.manifest["model_name"],
        "inputs": inputs,
        "outputs": [
            {"name": "probability", "datatype": "FP64"},
            {"name": "decision", "datatype": "INT64"},
        ],
    }


def predict(package: ModelPackage, body: Any) -> dict[str, Any]:
    """Score a v1 `instances` request; BadRequest when it breaks the contract."""
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
        raise BadRequest("request body must be a JSON object with an 'instances' list")
    instances = body["instances"]
    if not instances or not all(isinstance(i, dict) for i in instances):
        raise BadRequest("'instances' must be a non-empty list of objects")
    frame = pd.DataFrame(instances)
    missing = [c for c in package.transform.raw_columns if c not in frame.columns]
    if missing:
        raise BadRequest(f"instances lack required columns: {', '.join(missing)}")
    for column in package.transform.numeric:
        converted = pd.to_numeric(frame[column], errors="coerce")
        bad = frame[column].notna() & converted.isna()
        if bad.any():
            raise BadRequest(
                f"column {column!r} must be numeric, got {frame[column][bad].iloc[0]!r}"
            )
        frame[column] = converted
    probabilities = package.predict_records(frame)
    return {
        "predictions": [
            {"probability": float(p), "decision": int(p >= package.threshold)}
            for p in probabilities
        ]
    }


def make_handler(package: ModelPackage) -> type[BaseHTTPRequestHandler]:
    """A request handler bound to one loaded model."""
    name = package.manifest["model_name"]

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == f"/v1/models/{name}":
                self._send(HTTPStatus.OK, {"name": name, "ready": True})
            elif self.path == f"/v1/models/{name}/metadata":
                self._send(HTTPStatus.OK, model_metadata(package))
            else:
                self._send(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:
            if self.path != f"/v1/models/{name}:predict":
                self._send(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})
                return
            length = int(self.headers.get("Content-Length", 0))
            try:
                body = json.loads(self.rfile.read(length) or b"null")
                self._send(HTTPStatus.OK, predict(package, body))
            except (json.JSONDecodeError, BadRequest) as exc:
                self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})

        def log_message(self, format: str, *args: Any) -> None:
            """Silence per-request logs; the integration report records the outcomes."""

    return Handler


def serve(model_dir: Path, host: str, port: int) -> None:
    """Load the model and serve until interrupted."""
    package = load_model_package(model_dir)
    server = ThreadingHTTPServer((host, port), make_handler(package))
    print(json.dumps({"event": "listening", "port": server.server_address[1]}), flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    serve(args.model_dir, args.host, args.port)


if __name__ == "__main__":
    main()
