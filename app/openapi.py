"""Print the app's OpenAPI document, as committed in openapi/openapi.json (`make openapi`)."""

import json
import sys

from app.config import Settings
from app.main import create_app


def document() -> str:
    return json.dumps(create_app(Settings()).openapi(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(document())
