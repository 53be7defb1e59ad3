"""`microcrop ndvi IMAGE --plots GEOJSON --out DIR`: the imagery code path for one file."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from microcrop_assets.cli import main
from microcrop_assets.defs.imagery.rasters import process_image
from microcrop_assets_tests.fixtures.imagery import PLOT_PROPERTIES, Scene, field_reflectance


def plots_file(path, scene: Scene, boxes: dict[str, tuple]) -> str:
    features = [
        {"type": "Feature", "properties": {"plot_id": plot_id, **PLOT_PROPERTIES}, "geometry": scene.plot(*box)}
        for plot_id, box in boxes.items()
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return str(path)


def scene_with_masks() -> Scene:
    scene = Scene(field_reflectance((300, 260), seed=9), order=("nir", "red", "green", "blue"), epsg=32637)
    scene.origin = (300_000.0, 100_000.0)  # UTM 37N
    scene.raw = {("nir", 10, c): 0 for c in range(260)}  # a nodata row
    return scene


@pytest.mark.unit
def test_ndvi_writes_cogs_and_prints_the_statistics(tmp_path, capsys):
    scene = scene_with_masks()
    image = scene.write(tmp_path / "order 7.tif")
    boxes = {"KE-1": (5.3, 4.2, 120.7, 150.6), "KE-2": (130.2, 100.3, 250.8, 290.1)}
    plots = plots_file(tmp_path / "plots.geojson", scene, boxes)
    assert main(["ndvi", str(image), "--plots", plots, "--out", str(tmp_path / "out")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["rasters"]) == ["evi", "lai", "ndvi"]
    for index, raster in report["rasters"].items():
        assert raster["path"].endswith(f"order-7_{index}.tif")
        assert cog_validate(raster["path"])[0]
        assert raster["clipped"] == 0
        assert json.loads(Path(raster["stac"]).read_text())["assets"][index]["href"] == f"./order-7_{index}.tif"
    # the same numbers as the library call the imagery assets make
    expected = process_image(
        image,
        [(plot_id, scene.plot(*box)) for plot_id, box in boxes.items()],
        tmp_path / "lib",
        item_id="order-7",
    )
    assert [p["plot_id"] for p in report["plots"]] == ["KE-1", "KE-2"]
    for printed, stats in zip(report["plots"], expected.plots, strict=True):
        for key in ("ndvi_mean", "ndvi_median", "ndvi_p10", "ndvi_p90", "evi_mean", "lai_mean", "valid_fraction"):
            assert printed[key] == getattr(stats, key)
        assert printed["masked"] == stats.masked
    assert report["plots"][0]["masked"]["nodata"] == 116  # row 10, columns 5-120 (centres inside)
    assert report["plots"][1]["masked"]["nodata"] == 0
    with rasterio.open(report["rasters"]["ndvi"]["path"]) as cog:
        assert (cog.read(1)[10] == cog.nodata).all() and cog.nodata == -32768


@pytest.mark.unit
def test_bad_image_is_one_line_on_stderr(tmp_path, capsys):
    scene = scene_with_masks()
    plots = plots_file(tmp_path / "plots.geojson", scene, {"KE-1": (5.3, 4.2, 120.7, 150.6)})
    broken = tmp_path / "broken.tif"
    broken.write_bytes(scene.write(tmp_path / "ok.tif").read_bytes()[:3000])
    assert main(["ndvi", str(broken), "--plots", plots, "--out", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "broken.tif" in captured.err and "Traceback" not in captured.err


@pytest.mark.unit
def test_bad_plot_is_named(tmp_path, capsys):
    scene = scene_with_masks()
    image = scene.write(tmp_path / "ok.tif")
    plots = tmp_path / "plots.geojson"
    plots_file(plots, scene, {"KE-1": (5.3, 4.2, 120.7, 150.6)})
    document = json.loads(plots.read_text())
    document["features"][0]["geometry"]["coordinates"][0].pop()  # ring no longer closed
    plots.write_text(json.dumps(document))
    assert main(["ndvi", str(image), "--plots", str(plots), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    # the plots file's own report: a summary line, then one line per invalid feature (as `plots import`)
    assert err.startswith("microcrop ndvi: ") and "KE-1" in err and "not closed" in err and "Traceback" not in err


@pytest.mark.integration
def test_command_line_exit_status_without_traceback(tmp_path):
    scene = scene_with_masks()
    plots = plots_file(tmp_path / "plots.geojson", scene, {"KE-1": (5.3, 4.2, 120.7, 150.6)})
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    run = subprocess.run(
        [sys.executable, "-m", "microcrop_assets.cli", "ndvi", str(notes), "--plots", plots, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert run.stderr.startswith("microcrop ndvi: ") and "notes.txt" in run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
