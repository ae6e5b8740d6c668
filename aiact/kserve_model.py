"""The staged model package served by KServe's own Python model server (`kserve.ModelServer`),
on the Open Inference Protocol v2 over HTTP.

    python -m aiact.kserve_model --model_dir DIR --model_name NAME [--http_port 8080]
        [--http_host 0.0.0.0] [--enable_grpc false] [any other kserve.model_server option]

Runs in its own environment (`.venv-serving` locally, the aiact-serving image on a cluster):
kserve 0.21 needs protobuf >= 6.33, the pipeline's environment holds protobuf 4. It imports
only kserve, torch, numpy, pandas, PyYAML and the package's `aiact.model_package`,
`aiact.transform` and `aiact.serving` (the contract), never the pipeline's heavy libraries.

Routes (KServe's): `GET /v2/models/NAME/ready`, `GET /v2/models/NAME` (metadata: the inputs
and outputs of `aiact.serving`), `POST /v2/models/NAME/infer`. A request that breaks the
contract is refused in `preprocess` with kserve's `InvalidInput`, which the server answers with
HTTP 400 and `{"error": MESSAGE}`; malformed JSON gets FastAPI's 422 before the model is called.

`--http_host` is this module's own option: KServe's REST server always binds 0.0.0.0, which
suits a pod; the integration-testing stage binds 127.0.0.1 so that an unvetted model is never
reachable from outside the machine.

    python -m aiact.kserve_model --arguments-on-stdin

starts the server ahead of its model (the integration-testing stage's local server): the
process imports kserve and torch, then waits for ONE line on stdin, a JSON list of the
options above, and serves as if they had been given on the command line. The stage sends
that line only once the model's chain of custody is verified; end of input without a line
ends the process with nothing served.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

import kserve
from kserve import InferOutput, InferRequest, InferResponse
from kserve.errors import InvalidInput

from aiact import serving
from aiact.model_package import ModelPackage, load_model_package

logger = logging.getLogger("aiact.kserve_model")


class PackagedModel(kserve.Model):  # kserve: Any to mypy (absent from the pinned env)
    """A model package written by training, behind KServe's v2 data plane."""

    def __init__(self, name: str, model_dir: Path) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.package: ModelPackage | None = None
        self.ready = False

    def load(self) -> bool:
        """Load weights, architecture and fitted transform from the package directory."""
        self.package = load_model_package(self.model_dir)
        packaged_name = self.package.manifest.get("model_name")
        if packaged_name != self.name:
            logger.warning("serving package of model %r as %r", packaged_name, self.name)
        self.ready = True
        return self.ready

    @property
    def loaded(self) -> ModelPackage:
        """The loaded package (load() ran)."""
        if self.package is None:
            raise RuntimeError(f"model {self.name} is not loaded")
        return self.package

    def get_input_types(self) -> list[dict[str, Any]]:
        """The v2 metadata of the inputs: one tensor per raw column."""
        return serving.input_types(self.loaded.transform)

    def get_output_types(self) -> list[dict[str, Any]]:
        """The v2 metadata of the outputs: probability and decision."""
        return [dict(o) for o in serving.OUTPUT_TYPES]

    async def preprocess(
        self, payload: Any, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Validate a v2 request against the contract and turn it into raw records.

        Raises:
            InvalidInput: The request is not a v2 inference request or breaks the contract
                (HTTP 400 with the one-line reason).
        """
        if not isinstance(payload, InferRequest):
            raise InvalidInput(
                f"model {self.name} speaks the Open Inference Protocol v2 only: "
                f"POST /v2/models/{self.name}/infer with an 'inputs' list"
            )
        tensors = [
            serving.Tensor(t.name, t.datatype, list(t.shape or []), t.data) for t in payload.inputs
        ]
        try:
            frame = serving.frame_from_inputs(self.loaded.transform, tensors)
        except serving.ContractError as exc:
            raise InvalidInput(str(exc)) from None
        return {"id": payload.id or str(uuid.uuid4()), "records": frame}

    def predict(
        self, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> InferResponse:
        """Score the records; the response carries the request's id."""
        package = self.loaded
        probabilities = package.predict_records(payload["records"])
        decisions = (probabilities >= package.threshold).astype("int64")
        rows = len(probabilities)
        return InferResponse(
            response_id=payload["id"],
            model_name=self.name,
            infer_outputs=[
                InferOutput(serving.PROBABILITY, [rows], "FP64", probabilities.tolist()),
                InferOutput(serving.DECISION, [rows], "INT64", decisions.tolist()),
            ],
        )


def listen_on(host: str) -> None:
    """Make KServe's REST server bind `host` instead of its fixed 0.0.0.0."""
    from kserve import model_server

    base = model_server.RESTServer

    class HostRESTServer(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.config.host = host

    model_server.RESTServer = HostRESTServer


def parser() -> argparse.ArgumentParser:
    """KServe's model-server options plus this module's."""
    from kserve import model_server

    result = argparse.ArgumentParser(
        description="Serve an aiact model package with KServe's ModelServer (v2 protocol).",
        parents=[model_server.parser],
    )
    result.add_argument("--model_dir", type=Path, required=True, help="The model package.")
    result.add_argument("--http_host", default="0.0.0.0", help="The address to bind.")
    return result


def main(argv: list[str] | None = None, model_class: type[PackagedModel] = PackagedModel) -> None:
    """Load the package and serve it until SIGTERM (with serving.ARGUMENTS_ON_STDIN: once its
    options arrive on stdin; none: exit, nothing served)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv == [serving.ARGUMENTS_ON_STDIN]:
        line = sys.stdin.readline()
        if not line.strip():
            return
        argv = [str(a) for a in json.loads(line)]
    args, _ = parser().parse_known_args(argv)
    listen_on(args.http_host)
    model = model_class(args.model_name, args.model_dir)
    model.load()
    kserve.ModelServer(http_port=args.http_port, enable_grpc=args.enable_grpc, workers=1).start(
        [model]
    )


if __name__ == "__main__":
    main()
