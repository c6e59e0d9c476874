"""Platform connectors: one package per platform behind the interface in `connectors.base`.

Everything platform-specific (payload quirks, REST calls, markup, visibility) stays inside
its package; the service sees only `Delivery` in and `Event`/`Ignored` out.
"""
