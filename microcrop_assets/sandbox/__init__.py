"""Simulators of WeatherXM Pro, Spexi and Pinata over real HTTP, on a deterministic synthetic world.

- app.py: `create_app(SandboxConfig)`, `serve(...)` (the `microcrop sandbox serve` command)
- testing.py: `running_sandbox(...)` (a sandbox on a free loopback port in a background thread), `ManualClock`
- config.py: `SandboxConfig`, `Credentials`, `Faults`; scenario.py: drought / flood / heat-wave events
- world.py, observations.py, imagery.py: plots, stations, weather, crop condition, GeoTIFFs
- weatherxm.py, spexi.py, pinata.py: the vendor routes; faults.py: fault injection
"""
