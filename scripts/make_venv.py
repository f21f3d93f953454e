"""Make the project's virtual environment with nothing but python3 (stdlib only).

Debian's python3 comes without ensurepip unless python3-venv is installed; then the venv is made
without pip and pip is installed from its wheel on PyPI, which a wheel can do for itself.
"""

import json
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import venv
from pathlib import Path


def main(target: str) -> None:
    path = Path(target)
    python = path / "bin" / "python"
    try:
        import ensurepip  # noqa: F401
        has_ensurepip = True
    except ImportError:
        has_ensurepip = False
    venv.EnvBuilder(with_pip=has_ensurepip, clear=False).create(path)
    if has_ensurepip:
        return
    index = "https://pypi.org/pypi/pip/json"
    with urllib.request.urlopen(index, timeout=60) as response:
        release = json.load(response)
    wheel = next(f for f in release["urls"] if f["packagetype"] == "bdist_wheel")
    with tempfile.TemporaryDirectory() as folder:
        target_wheel = Path(folder) / wheel["filename"]
        # Mirrors may answer with addresses relative to the index.
        urllib.request.urlretrieve(urllib.parse.urljoin(index, wheel["url"]), target_wheel)
        # A pip wheel runs from itself: python pip.whl/pip install pip.whl
        subprocess.run([str(python), f"{target_wheel}/pip", "install", "--no-index", str(target_wheel)], check=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".venv")
