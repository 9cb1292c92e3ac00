"""The featherflow guest SDK for Python: write a feature plugin as plain
Python, build it into a component with componentize-py.

A plugin implements the ``feature`` world of ``wit/feature.wit``, whose
functions take whole batches packed into byte lists. This package hides that:
a feature subclasses :class:`Feature` over plain Python values, and the
plugin's app module ends with one line::

    from featherflow_sdk import Declaration, Feature, Field, Sliding, export

    class Count(Feature):
        def declare(self):
            return Declaration(
                view="counts",
                window=Sliding(size_ms=3_600_000, slide_ms=600_000),
                key_field="user_id",
                fields=[Field.text("user_id"), Field.integer("event_count")],
            )
        def empty(self):
            return 0
        def update(self, n, event):
            return n + 1
        def merge(self, into, other):
            return into + other
        def finish(self, n, window):
            return [window.key, n]
        def encode(self, n):
            return n.to_bytes(8, "little")
        def decode(self, data):
            if len(data) != 8:
                raise ValueError(f"expected 8 bytes, got {len(data)}")
            return int.from_bytes(data, "little")

    WitWorld = export(Count())

Layout (the Rust SDK's, ``guest-features/sdk``):

- :mod:`.feature`: :class:`Feature` and the plain types an author sees.
- :mod:`.adapter`: :class:`Adapter`, which unpacks batches, calls the
  feature and packs the results; pure Python, tested natively.
- :mod:`.codec`: the little-endian primitives (:class:`Reader`, :class:`Writer`).
- :mod:`.component`: :func:`export`, the componentize-py glue.
"""

from .adapter import Adapter, PluginError
from .codec import DecodeError, Reader, Writer
from .component import export
from .feature import (
    Declaration,
    Event,
    Feature,
    Field,
    FieldType,
    Session,
    Sliding,
    Tumbling,
    Window,
    WindowKind,
)

__version__ = "0.1.0"

__all__ = [
    "Adapter",
    "Declaration",
    "DecodeError",
    "Event",
    "Feature",
    "Field",
    "FieldType",
    "PluginError",
    "Reader",
    "Session",
    "Sliding",
    "Tumbling",
    "Window",
    "WindowKind",
    "Writer",
    "export",
]
