"""One ConfigurableResource per external system, bound once in `definitions.py`."""
