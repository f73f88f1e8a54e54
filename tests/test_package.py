"""The package's import-time setting: TensorFlow's oneDNN kernels on unless the user chose."""

import os
import subprocess
import sys

import pytest

# The bench's reader of TensorFlow's own answer (and of the variable), in a fresh process.
PROBE = "from image_completion.bench.machine import onednn_state\nprint(onednn_state())\n"


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        (None, "on (TF_ENABLE_ONEDNN_OPTS=1)"),
        ("0", "off (TF_ENABLE_ONEDNN_OPTS=0)"),
        ("1", "on (TF_ENABLE_ONEDNN_OPTS=1)"),
    ],
)
def test_onednn_is_on_unless_the_user_turned_it_off(user, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"} | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    if user is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = user
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == expected
