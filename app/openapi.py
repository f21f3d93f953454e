"""Write the app's OpenAPI document, as committed in openapi/ (`make openapi`): JSON, and the same as YAML."""

import json
import sys
from pathlib import Path

import yaml

from app.config import Settings
from app.main import create_app


def spec() -> dict:
    return create_app(Settings()).openapi()


def document() -> str:
    return json.dumps(spec(), indent=2) + "\n"


def yaml_document() -> str:
    return yaml.safe_dump(spec(), sort_keys=False, allow_unicode=True)


def write(folder: Path) -> None:
    (folder / "openapi.json").write_text(document())
    (folder / "openapi.yaml").write_text(yaml_document())


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("openapi"))
