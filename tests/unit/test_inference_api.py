"""The package's public names: all resolvable, and importing the package stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import inference


def test_every_public_name_resolves_to_its_module() -> None:
    assert sorted(inference.__all__) == inference.__all__
    assert set(inference.__all__) == set(inference._EXPORTS)
    for name in inference.__all__:
        value = getattr(inference, name)
        assert value.__name__ == name
        assert value.__module__ == inference._EXPORTS[name]


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = inference.Nope  # type: ignore[attr-defined]


def test_importing_the_seam_loads_no_runtime() -> None:
    code = (
        "import sys, inference, inference.backend, inference.batcher; "
        "heavy = {'onnxruntime', 'cv2', 'sklearn', 'tesserocr'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
