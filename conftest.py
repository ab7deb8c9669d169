"""Test-session set-up shared by every package.

Logical devices can be configured only once per process and before TensorFlow runs any op, so the
8 logical CPU devices that DTensor tests mesh over (`batch=2, expert=4`) are made here, first.
Tests that do not use a mesh run on CPU:0 as usual.
"""

import os
import pathlib

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

NUM_LOGICAL_CPUS = 8

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * NUM_LOGICAL_CPUS)

SHARED_DATA = pathlib.Path(__file__).resolve().parent.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """`../shared/data` (real media for tests); skips the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent (it exists only on the project's machines)")
    return SHARED_DATA
