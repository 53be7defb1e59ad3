"""The season demo's two committed data files: the priced regional products (written by calibration.py)
and the season plots carrying their region's terms (written by plot_generator.py from the products)."""

from pathlib import Path

HERE = Path(__file__).resolve().parent
PRODUCTS_FILE = HERE / "season_products.json"
SEASON_PLOTS_FILE = HERE / "season_plots.geojson"
