"""The one moto layer (deploytools/moto_layer): one pinned moto version, checked loudly, and dev-only."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

import moto
import pytest

from deploytools.moto_layer import MOTO_VERSION, MotoVersionError, cloudformation, require_moto_version
from deploytools.moto_layer.stepfunctions import moto_patches

ROOT = Path(__file__).resolve().parent.parent


def setup_cfg_moto_pin() -> str:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    pins = [line for line in setup["options.extras_require"]["dev"].splitlines() if line.startswith("moto")]
    assert len(pins) == 1, pins
    return re.fullmatch(r"moto(\[[^\]]*\])?==(\S+)", pins[0]).group(2)


def test_setup_cfg_pins_the_moto_version_the_layer_is_written_for():
    assert setup_cfg_moto_pin() == MOTO_VERSION


def test_the_installed_moto_is_the_pinned_one():
    require_moto_version()
    assert moto.__version__ == MOTO_VERSION


def test_another_moto_fails_in_one_line_naming_both_versions_and_what_to_re_run(monkeypatch):
    monkeypatch.setattr(moto, "__version__", "9.9.9")
    with pytest.raises(MotoVersionError) as failure:
        require_moto_version()
    message = str(failure.value)
    assert "\n" not in message
    assert "moto 9.9.9 is installed" in message and f"written for moto {MOTO_VERSION}" in message
    assert "tests/test_moto_workarounds.py" in message and "tests/test_moto_sfn_harness.py" in message


def test_both_halves_of_the_layer_refuse_another_moto(monkeypatch):
    monkeypatch.setattr(moto, "__version__", "9.9.9")
    monkeypatch.setattr(cloudformation, "_applied", False)
    with pytest.raises(MotoVersionError):
        cloudformation.apply_all()
    with pytest.raises(MotoVersionError), moto_patches():
        pass


def test_moto_stays_a_dev_only_dependency():
    """The generator and deploy.sh's Python side run without moto; only local_aws's `serve` imports it."""
    script = ("import sys, generator.__main__, generator.render, deploytools.cfn, deploytools.local_aws; "
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'moto' or 'moto_layer' in m))")
    out = subprocess.run([sys.executable, "-c", script], env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.strip() == "[]"
