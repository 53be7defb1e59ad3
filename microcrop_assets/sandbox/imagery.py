"""Drone imagery of the synthetic world: multispectral surface-reflectance GeoTIFFs.

A capture covers a plot's bounding box plus a margin in the plot's UTM zone, at the requested pixel
size. Reflectance follows the plot's crop condition on the capture day (NDVI about 0.15 + 0.65 x
condition: ~0.75 healthy, ~0.35 under drought), with texture noise, nodata (0) around the flown
area and now and then a cloud (bright in every band). Bands are uint16 digital numbers:
reflectance = DN x 0.0001 - 0.1, stated as GDAL scales/offsets, as SCALE / OFFSET tags and as a
`reflectance_formula` tag. The bytes are a pure function of the seed, scenario and capture.
"""

import datetime as dt
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.features import geometry_mask
from rasterio.io import MemoryFile
from scipy.ndimage import zoom
from shapely.geometry import Polygon, box

from microcrop_assets.sandbox.seeding import rng, unit
from microcrop_assets.sandbox.world import World, crop_condition

BANDS = ("red", "green", "blue", "nir")
# a capture file: 16-bit digital numbers (0 = not flown), 256 px tiles, DEFLATE with predictor
CAPTURE_PROFILE = {
    "driver": "GTiff",
    "dtype": "uint16",
    "nodata": 0,
    "tiled": True,
    "blockxsize": 256,
    "blockysize": 256,
    "compress": "deflate",
    "predictor": 2,
}
WAVELENGTH_NM = {"red": 650, "green": 560, "blue": 475, "nir": 842}
SCALE = 0.0001
OFFSET = -0.1
REFLECTANCE_FORMULA = f"reflectance = DN * {SCALE} + ({OFFSET}); DN 0 is nodata"
MAX_PIXELS = 40_000_000
CLOUDY_SHARE = 0.3  # captures with a cloud in view
CACHE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Capture:
    image_id: str
    plot_id: str
    geometry: object  # the plot, shapely lon/lat
    crop: str
    sowing_date: dt.date
    capture_date: dt.date
    resolution_m: float
    bands: tuple[str, ...]


def utm_epsg(lon: float, lat: float) -> int:
    zone = int((lon + 180) // 6) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


@dataclass(frozen=True)
class Grid:
    """A capture's pixel grid in the plot's UTM zone (origin snapped to the pixel size)."""

    epsg: int
    resolution: float
    x0: float
    y1: float
    width: int
    height: int
    margin_m: float
    plot_utm: object

    @property
    def transform(self):
        return Affine(self.resolution, 0, self.x0, 0, -self.resolution, self.y1)

    def footprint(self) -> Polygon:
        """The raster's extent in lon/lat."""
        to_lonlat = Transformer.from_crs(self.epsg, 4326, always_xy=True).transform
        extent = box(self.x0, self.y1 - self.height * self.resolution, self.x0 + self.width * self.resolution, self.y1)
        return reproject(to_lonlat, extent)


def reproject(to_crs, geometry):
    """The geometry's coordinates through a pyproj transform (x, y arrays -> x, y arrays)."""
    return shapely.transform(geometry, lambda xy: np.column_stack(to_crs(xy[:, 0], xy[:, 1])))


def grid_for(geometry, resolution_m: float) -> Grid:
    centre = geometry.centroid
    epsg = utm_epsg(centre.x, centre.y)
    to_utm = Transformer.from_crs(4326, epsg, always_xy=True).transform
    plot_utm = reproject(to_utm, geometry)
    margin = max(10.0, 8 * resolution_m)
    min_x, min_y, max_x, max_y = plot_utm.bounds
    x0 = math.floor((min_x - margin) / resolution_m) * resolution_m
    y0 = math.floor((min_y - margin) / resolution_m) * resolution_m
    x1 = math.ceil((max_x + margin) / resolution_m) * resolution_m
    y1 = math.ceil((max_y + margin) / resolution_m) * resolution_m
    width, height = round((x1 - x0) / resolution_m), round((y1 - y0) / resolution_m)
    return Grid(epsg, resolution_m, x0, y1, width, height, margin, plot_utm)


def square_around(lon: float, lat: float, area_hectares: float) -> Polygon:
    """A square field of the given area centred on a point, in lon/lat."""
    epsg = utm_epsg(lon, lat)
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    half = math.sqrt(area_hectares * 10_000) / 2
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True).transform
    return reproject(to_lonlat, box(x - half, y - half, x + half, y + half))


class Imagery:
    """Renders captures, keeping the latest in memory up to CACHE_BYTES (a download is often retried)."""

    def __init__(self, world: World):
        self.world = world
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def geotiff(self, capture: Capture) -> bytes:
        with self._lock:
            if capture.image_id in self._cache:
                self._cache.move_to_end(capture.image_id)
                return self._cache[capture.image_id]
        data = self._render(capture)
        with self._lock:
            self._cache[capture.image_id] = data
            while sum(len(kept) for kept in self._cache.values()) > CACHE_BYTES and len(self._cache) > 1:
                self._cache.popitem(last=False)
        return data

    def _render(self, capture: Capture) -> bytes:
        world = self.world
        grid = grid_for(capture.geometry, capture.resolution_m)
        shape = (grid.height, grid.width)
        gen = rng(world.seed, "image", capture.image_id)
        centre = capture.geometry.centroid
        condition = crop_condition(world, centre.x, centre.y, capture.crop, capture.sowing_date, capture.capture_date)

        in_plot = geometry_mask([grid.plot_utm], shape, grid.transform, invert=True, all_touched=False)
        flown = geometry_mask([grid.plot_utm.buffer(0.6 * grid.margin_m)], shape, grid.transform, invert=True)
        # field margins (grass, hedges) beside the plot; the crop inside it
        target_ndvi = np.where(in_plot, 0.15 + 0.65 * condition, 0.5)
        target_red = np.where(in_plot, 0.05 + 0.11 * (1 - condition), 0.08)
        ndvi = np.clip(target_ndvi + _texture(gen, shape, 0.04) + gen.normal(0, 0.02, shape), -0.2, 0.95)
        red = target_red * np.exp(_texture(gen, shape, 0.08) + gen.normal(0, 0.03, shape))
        reflectance = {
            "red": red,
            "green": 0.5 * red + 0.04 + 0.04 * np.clip(ndvi, 0, 1),
            "blue": 0.6 * red + 0.01,
            "nir": red * (1 + ndvi) / (1 - ndvi),
        }
        cloud_cover = 0.0
        if unit(world.seed, "cloud", capture.image_id) < CLOUDY_SHARE:
            rows, cols = np.indices(shape)
            cy, cx = gen.uniform(0, grid.height), gen.uniform(0, grid.width)
            radius = gen.uniform(0.15, 0.35) * min(shape)
            opacity = np.exp(-2 * ((rows - cy) ** 2 + (cols - cx) ** 2) / radius**2)
            for band, bright in (("red", 0.55), ("green", 0.56), ("blue", 0.6), ("nir", 0.62)):
                reflectance[band] = reflectance[band] * (1 - opacity) + bright * opacity
            cloud_cover = float((opacity[flown] > 0.5).mean())

        with MemoryFile() as memory:
            with memory.open(
                **CAPTURE_PROFILE,
                width=grid.width,
                height=grid.height,
                count=len(capture.bands),
                crs=f"EPSG:{grid.epsg}",
                transform=grid.transform,
                interleave="band",
            ) as dst:
                for number, band in enumerate(capture.bands, start=1):
                    dn = np.clip(np.round((reflectance[band] - OFFSET) / SCALE), 1, 65535).astype(np.uint16)
                    dn[~flown] = 0
                    dst.write(dn, number)
                    dst.set_band_description(number, band)
                    dst.update_tags(
                        number, SCALE=str(SCALE), OFFSET=str(OFFSET), WAVELENGTH_NM=str(WAVELENGTH_NM[band])
                    )
                dst.scales = [SCALE] * len(capture.bands)
                dst.offsets = [OFFSET] * len(capture.bands)
                dst.update_tags(
                    SCALE=str(SCALE),
                    OFFSET=str(OFFSET),
                    reflectance_formula=REFLECTANCE_FORMULA,
                    BANDS=",".join(capture.bands),
                    IMAGE_ID=capture.image_id,
                    PLOT_ID=capture.plot_id,
                    CAPTURE_DATE=capture.capture_date.isoformat(),
                    RESOLUTION_M=str(capture.resolution_m),
                    CLOUD_COVER=f"{cloud_cover:.4f}",
                    SANDBOX_CROP_CONDITION=f"{condition:.4f}",
                )
            return memory.read()


def _texture(gen: np.random.Generator, shape: tuple[int, int], amplitude: float) -> np.ndarray:
    """Smooth spatial noise: a coarse random grid (one node per ~16 px) interpolated to the raster."""
    coarse = gen.normal(0, amplitude, (max(2, shape[0] // 16 + 2), max(2, shape[1] // 16 + 2)))
    fine = zoom(coarse, (shape[0] / coarse.shape[0] + 1e-9, shape[1] / coarse.shape[1] + 1e-9), order=1)
    return fine[: shape[0], : shape[1]]


def pixel_count(geometry, resolution_m: float) -> int:
    grid = grid_for(geometry, resolution_m)
    return grid.width * grid.height
