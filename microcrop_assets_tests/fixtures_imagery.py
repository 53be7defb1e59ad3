"""Multispectral test scenes written with rasterio, independent of the sandbox's renderer."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from shapely.geometry import box, mapping
from shapely.ops import transform as reproject


@dataclass
class Scene:
    """Reflectance per band plus how to store it: band order, DN scale/offset, dtype, grid."""

    reflectance: dict[str, np.ndarray]
    order: tuple[str, ...] = ("red", "green", "blue", "nir")
    scale: float = 0.0001
    offset: float = -0.1
    dtype: str = "uint16"
    nodata: float | None = 0
    epsg: int = 32736
    origin: tuple[float, float] = (500_000.0, 9_900_000.0)  # upper-left corner
    resolution: float = 0.5
    descriptions: bool = True
    extra_tags: dict = field(default_factory=dict)
    band_tags: dict[str, dict] = field(default_factory=dict)
    # pixels forced to a raw DN value after conversion: (band, row, col) -> DN
    raw: dict[tuple[str, int, int], float] = field(default_factory=dict)
    # bands written as they are after the reflectance bands (e.g. a QA band): description -> values
    extra_bands: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return next(iter(self.reflectance.values())).shape

    @property
    def transform(self) -> Affine:
        return Affine(self.resolution, 0, self.origin[0], 0, -self.resolution, self.origin[1])

    def digital_numbers(self) -> dict[str, np.ndarray]:
        out = {}
        for band in self.order:
            values = (self.reflectance[band] - self.offset) / self.scale
            if np.dtype(self.dtype).kind in "ui":
                info = np.iinfo(self.dtype)
                values = np.clip(np.round(values), info.min + 1, info.max - 1)
            out[band] = values.astype(self.dtype)
        for (band, row, col), value in self.raw.items():
            out[band][row, col] = value
        return out

    def write(self, path: Path) -> Path:
        height, width = self.shape
        dns = self.digital_numbers()
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=width,
            height=height,
            count=len(self.order) + len(self.extra_bands),
            dtype=self.dtype,
            crs=f"EPSG:{self.epsg}",
            transform=self.transform,
            nodata=self.nodata,
            tiled=True,
            blockxsize=256,
            blockysize=256,
            compress="deflate",
        ) as dst:
            for number, band in enumerate(self.order, start=1):
                dst.write(dns[band], number)
                if self.descriptions:
                    dst.set_band_description(number, band)
                dst.update_tags(number, **self.band_tags.get(band, {}))
            for number, (name, values) in enumerate(self.extra_bands.items(), start=len(self.order) + 1):
                dst.write(values.astype(self.dtype), number)
                dst.set_band_description(number, name)
            dst.scales = [self.scale] * len(self.order) + [1.0] * len(self.extra_bands)
            dst.offsets = [self.offset] * len(self.order) + [0.0] * len(self.extra_bands)
            dst.update_tags(CAPTURE_DATE="2025-06-01T09:30:00+00:00", **self.extra_tags)
        return path

    def plot(self, col0: float, row0: float, col1: float, row1: float) -> dict:
        """A lon/lat GeoJSON polygon covering the given fractional pixel box of the scene."""
        x0, y0 = self.transform @ (col0, row1)
        x1, y1 = self.transform @ (col1, row0)
        to_lonlat = Transformer.from_crs(self.epsg, 4326, always_xy=True).transform
        return mapping(reproject(to_lonlat, box(x0, y0, x1, y1).buffer(0)))


def field_reflectance(shape: tuple[int, int], seed: int = 7) -> dict[str, np.ndarray]:
    """Plausible crop + soil reflectance with texture: NDVI about 0.2-0.8, no cloud, no shadow."""
    gen = np.random.default_rng(seed)
    vigour = np.clip(0.5 + 0.3 * np.sin(np.arange(shape[1]) / 17)[None, :] + gen.normal(0, 0.08, shape), 0.05, 0.95)
    red = 0.03 + 0.12 * (1 - vigour) + gen.normal(0, 0.005, shape)
    nir = 0.15 + 0.4 * vigour + gen.normal(0, 0.01, shape)
    blue = 0.02 + 0.05 * (1 - vigour) + gen.normal(0, 0.003, shape)
    green = 0.05 + 0.05 * vigour
    return {"red": red, "green": green, "blue": blue, "nir": nir}
