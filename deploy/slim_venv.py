"""Makes the image's virtual environment smaller without changing what runs (Dockerfile, build stage).

1. Removes what no process of the image executes: the packages' own test suites, C and C++ headers
   and Cython sources, pyarrow's Flight RPC and S3 filesystem libraries (the pipeline reads and writes
   Arrow and Parquet in memory and talks to S3 through boto3), duplicate copies of pyarrow's shared
   libraries (a wheel cannot hold symlinks, so each soname is shipped three times), and kubernetes'
   asyncio client (dagster-k8s uses the synchronous one).
2. Compiles bytecode for the modules the image's processes import (the definitions, every module of
   the package, the Dagster command lines, webserver, daemon and run launchers), not for every file:
   a run container imports from a read-only tree, so a missing .pyc would be compiled again by every
   run, while a .pyc nothing imports is only weight.

Run as: python deploy/slim_venv.py /opt/venv /app/microcrop_assets
"""

import compileall
import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

# test suites by their conventional name only: some packages ship code in a `test` package (dagster's
# code server imports dagster._utils.test)
REMOVED_DIRECTORIES = ("tests",)
REMOVED_FILES = (
    "pyarrow/_flight.*.so",
    "pyarrow/libarrow_flight.so.*",
    "pyarrow/libarrow_python_flight.so*",
    "pyarrow/_s3fs.*.so",
    "pyarrow/libarrow_s3.so.*",
    "pyarrow/_pyarrow_cpp_tests.*.so",
    "pyarrow/libarrow_python.so",
    "pyarrow/libarrow_python.so.*.*.*",
    "pyarrow/libarrow_python_parquet_encryption.so",
    "pyarrow/libarrow_python_parquet_encryption.so.*.*.*",
    "pyarrow/include",
    "numpy/_core/include",
    "pyarrow/*.pyx",
    "pyarrow/*.pxd",
    "pyarrow/includes",
    "pyarrow/src",
    "kubernetes/aio",
    "cytoolz/*.pyx",
    "cytoolz/*.pxd",
    "cytoolz/*.c",
)
# what the image's processes import besides the package itself
ENTRY_MODULES = (
    "dagster._cli",
    "dagster._daemon.cli",
    "dagster._grpc.server",
    "dagster_webserver.cli",
    "dagster_graphql",
    "dagster_postgres",
    "dagster_docker",
    "dagster_k8s",
    "uvicorn",
)


def prune(site_packages: Path) -> int:
    removed = 0
    for path in list(site_packages.rglob("*")):
        if path.is_dir() and path.name in REMOVED_DIRECTORIES and path.exists():
            removed += _remove(path)
    for pattern in REMOVED_FILES:
        for path in site_packages.glob(pattern):
            removed += _remove(path)
    return removed


def _remove(path: Path) -> int:
    if path.is_dir():
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        shutil.rmtree(path)
    else:
        size = path.stat().st_size
        path.unlink()
    return size


def import_everything(package_dir: Path) -> None:
    """Imports every module of the package and the entry points, writing their bytecode."""
    for module in ENTRY_MODULES:
        importlib.import_module(module)
    package = package_dir.name
    importlib.import_module(package)
    for info in pkgutil.walk_packages([str(package_dir)], prefix=f"{package}."):
        # a __main__ would run its command; alembic loads the migrations by path (compiled below)
        if not info.name.endswith(".__main__") and ".migrations" not in info.name:
            importlib.import_module(info.name)


def main() -> None:
    venv, package_dir = Path(sys.argv[1]), Path(sys.argv[2])
    site_packages = next(venv.glob("lib/python3*/site-packages"))
    freed = prune(site_packages)
    # a fresh interpreter, so that bytecode is written for exactly what the imports reach
    subprocess.run([str(venv / "bin/python"), __file__, "--import", str(package_dir)], check=True)
    compileall.compile_dir(package_dir, quiet=1)
    print(f"slim_venv: removed {freed / 1e6:.0f} MB; bytecode for the imported modules written")


if __name__ == "__main__":
    if sys.argv[1] == "--import":
        import_everything(Path(sys.argv[2]))
    else:
        main()
