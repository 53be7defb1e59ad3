"""Hostile plots files (security issue 14, finding 8): size and JSON nesting depth refused before
parsing, in one line; a plot over the vertex or area limit named like any invalid feature."""

import json
import math

import pytest

from microcrop_assets.cli import main
from microcrop_assets.defs.plots.assets import DEMO_PLOTS, read_source
from microcrop_assets.defs.plots.registry import PlotsFileError, parse_plots

SQUARE = [[34.70, 0.20], [34.7015, 0.20], [34.7015, 0.2012], [34.70, 0.2012], [34.70, 0.20]]  # about 2.2 ha
DEGREE_SQUARE = [[34.5, 0.1], [34.9, 0.1], [34.9, 0.5], [34.5, 0.5], [34.5, 0.1]]  # 0.4 degree: ~197,000 ha


def feature(plot_id: str, ring=SQUARE, **properties) -> dict:
    return {
        "type": "Feature",
        "properties": {
            "plot_id": plot_id,
            "policy_id": f"POL-{plot_id}",
            "farmer_address": "0x" + "ab" * 20,
            "crop": "maize",
            "sowing_date": "2025-03-15",
            "season_end": "2025-09-30",
            "sum_insured_usdc": "1000",
            **properties,
        },
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def collection(*features) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features)})


def round_ring(vertices: int) -> list[list[float]]:
    """A closed ring of `vertices` positions (the last repeats the first) around a 1 ha-sized circle."""
    angles = [2 * math.pi * i / (vertices - 1) for i in range(vertices - 1)]
    ring = [[34.7 + 0.0005 * math.cos(a), 0.2 + 0.0005 * math.sin(a)] for a in angles]
    return [*ring, ring[0]]


@pytest.mark.unit
def test_a_file_over_the_size_limit_is_refused_in_one_line_before_it_is_parsed(monkeypatch):
    text = collection(feature("KE-1"))
    size = len(text.encode())
    monkeypatch.setenv("MICROCROP_MAX_PLOTS_FILE_BYTES", str(size - 1))
    with pytest.raises(PlotsFileError) as caught:
        parse_plots(text, "upload.geojson")
    assert str(caught.value) == (
        f"upload.geojson: bytes={size}: more than MICROCROP_MAX_PLOTS_FILE_BYTES={size - 1}; nothing was changed"
    )
    # not JSON at all, but too large first: the parser never sees it
    with pytest.raises(PlotsFileError, match=f"bytes={size}: more than MICROCROP_MAX_PLOTS_FILE_BYTES"):
        parse_plots(b"x" * size, "junk.geojson")
    monkeypatch.setenv("MICROCROP_MAX_PLOTS_FILE_BYTES", str(size))
    assert list(parse_plots(text, "upload.geojson")["plot_id"]) == ["KE-1"]


@pytest.mark.unit
def test_100000_deep_nesting_is_one_line_from_the_cli_never_a_recursion_error(tmp_path, capsys):
    """The finding's real size (200 kB): json.loads recursed until RecursionError and a traceback."""
    deep = feature("KE-1")
    text = json.dumps({"type": "FeatureCollection", "features": [deep]})
    text = text.replace('"crop": "maize"', '"crop": ' + "[" * 100_000 + "]" * 100_000)
    plots = tmp_path / "deep.geojson"
    plots.write_text(text)
    assert main(["ndvi", str(tmp_path / "image.tif"), "--plots", str(plots), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == (
        f"microcrop ndvi: {plots}: nesting depth=100004: JSON arrays/objects nested deeper than "
        "MICROCROP_MAX_PLOTS_JSON_DEPTH=20; nothing was changed\n"
    )


@pytest.mark.unit
def test_brackets_inside_strings_do_not_count_and_the_default_depth_takes_every_plots_file(monkeypatch):
    bracketed = feature("KE-1", policy_id='[[[[{{"[' * 8)  # text, not nesting: 56 openers, 64 bytes
    multi = feature(
        "KE-2", policy_terms={"layers": {"dry": {"peril": "drought", "index": "spi_3", "trigger": "-1", "exit": "-2"}}}
    )
    multi["geometry"] = {"type": "MultiPolygon", "coordinates": [[SQUARE]]}  # positions 8 levels deep
    frame = parse_plots(collection(bracketed, multi), "deep-enough.geojson")
    assert list(frame["plot_id"]) == ["KE-1", "KE-2"]
    monkeypatch.setenv("MICROCROP_MAX_PLOTS_JSON_DEPTH", "7")
    with pytest.raises(PlotsFileError, match="nesting depth=8: .* deeper than MICROCROP_MAX_PLOTS_JSON_DEPTH=7"):
        parse_plots(collection(bracketed, multi), "deep-enough.geojson")


@pytest.mark.unit
def test_a_plot_over_the_vertex_limit_is_named_and_the_other_features_still_checked(monkeypatch):
    """Finding 8, small: a 64-vertex ring over a limit of 50 stands for the 2-million-vertex one."""
    monkeypatch.setenv("MICROCROP_MAX_PLOT_VERTICES", "50")
    text = collection(feature("GOOD"), feature("ROUND", round_ring(64)), feature("BANANA", crop="banana"))
    with pytest.raises(PlotsFileError) as caught:
        parse_plots(text, "walked.geojson")
    found = [(p.index, p.plot_id, p.field, p.value) for p in caught.value.problems]
    assert found == [(1, "ROUND", "vertices", 64), (2, "BANANA", "crop", "banana")]
    assert "feature 1 (plot_id 'ROUND'): vertices=64: more than MICROCROP_MAX_PLOT_VERTICES=50" in str(caught.value)
    # counted before any position is looked at: positions that are not even numbers are refused for their count
    with pytest.raises(PlotsFileError, match="vertices=51: more than MICROCROP_MAX_PLOT_VERTICES=50"):
        parse_plots(collection(feature("JUNK", [["x", "y"]] * 51)), "junk.geojson")
    monkeypatch.setenv("MICROCROP_MAX_PLOT_VERTICES", "64")
    with pytest.raises(PlotsFileError) as caught:
        parse_plots(text, "walked.geojson")
    assert [p.plot_id for p in caught.value.problems] == ["BANANA"]


@pytest.mark.unit
def test_a_plot_over_the_area_limit_is_named_with_its_area(monkeypatch):
    with pytest.raises(PlotsFileError) as caught:  # the default 50 ha, the finding's 0.4 degree plot
        parse_plots(collection(feature("GOOD"), feature("HUGE", DEGREE_SQUARE)), "upload.geojson")
    [problem] = caught.value.problems
    assert (problem.index, problem.plot_id, problem.field) == (1, "HUGE", "area_ha")
    assert 190_000 < problem.value < 200_000
    assert problem.reason == "more than MICROCROP_MAX_PLOT_HECTARES=50"
    monkeypatch.setenv("MICROCROP_MAX_PLOT_HECTARES", "2")
    with pytest.raises(
        PlotsFileError, match=r"plot_id 'GOOD'\): area_ha=2\.2: more than MICROCROP_MAX_PLOT_HECTARES=2"
    ):
        parse_plots(collection(feature("GOOD")), "upload.geojson")
    monkeypatch.setenv("MICROCROP_MAX_PLOT_HECTARES", "3")
    assert parse_plots(collection(feature("GOOD")), "upload.geojson")["area_ha"].iloc[0] < 3


@pytest.mark.integration
def test_plots_import_refuses_a_huge_plot_by_name_and_changes_nothing(clean_plots, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", clean_plots.url)
    assert main(["plots", "import", str(DEMO_PLOTS)]) == 0
    before = clean_plots.read_frame("SELECT * FROM plots ORDER BY plot_id")
    document = json.loads(DEMO_PLOTS.read_text())
    document["features"].append(feature("KE-HUGE", DEGREE_SQUARE))
    upload = tmp_path / "upload.geojson"
    upload.write_text(json.dumps(document))
    capsys.readouterr()
    assert main(["plots", "import", str(upload)]) == 1
    err = capsys.readouterr().err
    assert f"{upload}: 1 invalid plot feature(s), nothing was changed" in err
    assert "feature 12 (plot_id 'KE-HUGE'): area_ha=" in err and "MICROCROP_MAX_PLOT_HECTARES=50" in err
    assert clean_plots.read_frame("SELECT * FROM plots ORDER BY plot_id").equals(before)


@pytest.mark.integration
def test_an_oversized_plots_source_is_refused_by_its_stored_size_before_a_byte_is_read(tmp_path, s3_store, monkeypatch):
    monkeypatch.setenv("MICROCROP_MAX_PLOTS_FILE_BYTES", "1000")
    big = tmp_path / "plots.geojson"
    big.write_bytes(b" " * 1001)
    s3_store.put("uploads/plots.geojson", b" " * 1001)
    unread = []
    monkeypatch.setattr(type(big), "read_bytes", lambda self: unread.append(self) or b"")
    monkeypatch.setattr(type(s3_store), "get_bytes", lambda self, *a, **k: unread.append(a) or b"")
    for source, store in ((str(big), None), (f"s3://{s3_store.bucket}/uploads/plots.geojson", s3_store)):
        with pytest.raises(PlotsFileError, match="bytes=1001: more than MICROCROP_MAX_PLOTS_FILE_BYTES=1000"):
            read_source(source, store)
    assert unread == []
