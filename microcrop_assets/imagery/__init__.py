"""Imagery: multispectral GeoTIFFs -> NDVI / EVI / LAI rasters and per-plot statistics (rasters.py)."""
