"""Loading the definitions (every run, sensor tick and code-server start) must not import the heavy
libraries: each is imported by the function that uses it (issue 18). Checked in a fresh process, since
this test session has long since imported all of them."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

# top-level packages that each cost tens to hundreds of milliseconds or megabytes to import. Not yet
# here: pandas (and pyarrow, which pandas imports itself), still imported at module level by most of the
# pipeline and named in asset signatures, whose annotations Dagster reads when the definitions load.
HEAVY_MODULES = [
    "boto3",
    "botocore",
    "eth_abi",
    "eth_account",
    "fakeredis",
    "h3",
    "jsonschema",
    "numba",
    "pyproj",
    "pystac",
    "rasterio",
    "rio_cogeo",
    "rio_stac",
    "scipy",
    "shapely",
    "web3",
]


def test_loading_the_definitions_imports_no_heavy_library():
    script = (
        "import json, sys\n"
        "import microcrop_assets.definitions\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ), check=False
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.splitlines()[-1]))

    assert "dagster" in loaded  # the definitions did load
    assert sorted(loaded & set(HEAVY_MODULES)) == []
