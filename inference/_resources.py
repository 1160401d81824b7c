"""Locate model files shipped inside installed packages, without importing them.

``importlib.resources.files(pkg)`` executes ``pkg/__init__.py``; some model
packages do heavy or fragile work there (toxicityclassifier imports nltk and
scikit-learn's metrics). Model files must be plain files on disk anyway
(onnxruntime and pickle read paths), so we resolve them from the import spec.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path

from pipeline.errors import ConfigError

__all__ = ["distribution_version", "package_file", "sha256_file"]


def package_file(package: str, relative: str) -> Path:
    """Path of ``relative`` inside installed ``package``; ConfigError if absent."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"package {package!r} cannot be located: {exc}") from exc
    locations = [] if spec is None else list(spec.submodule_search_locations or [])
    for location in locations:
        candidate = Path(location, relative)
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"model file {relative!r} not found in package {package!r} "
        f"(searched {locations or 'nothing: package not installed'})"
    )


def distribution_version(distribution: str) -> str:
    """Installed version of a distribution (PyPI name); ConfigError if absent."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigError(f"distribution {distribution!r} is not installed") from exc


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
