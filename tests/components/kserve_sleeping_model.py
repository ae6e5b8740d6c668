"""A model server whose predict never returns in time: the hung-server case of the integration
tests. Run by the KServe environment's interpreter (.venv-serving), like aiact.kserve_model:

    python -m tests.components.kserve_sleeping_model --model_dir DIR --model_name NAME ...

Readiness and metadata answer normally (the model is loaded and ready); every inference
request blocks the server for an hour.
"""

from __future__ import annotations

import time
from typing import Any

from aiact.kserve_model import PackagedModel, main


class SleepingModel(PackagedModel):
    """Loads like the real model, then hangs in predict."""

    def predict(self, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        time.sleep(3600)
        return super().predict(payload, headers)


if __name__ == "__main__":
    main(model_class=SleepingModel)
