"""The plugin's math, natively: ``python3 -m unittest discover -s tests``
(or ``python3 -m pytest tests``)."""

import pathlib
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from featherflow_sdk import Event, Window  # noqa: E402
from plugin import Plugin  # noqa: E402


class PluginTest(unittest.TestCase):
    def test_counts_events_and_sums_purchases(self):
        p = Plugin()
        s = p.empty()
        for event_type, price in [("view", 5.0), ("purchase", 19.99), ("cart", 1.0), ("purchase", 0.01)]:
            s = p.update(s, Event(0, price, event_type, "u1"))
        self.assertEqual(s[0], 4)
        self.assertAlmostEqual(s[1], 20.0)
        self.assertEqual(p.decode(p.encode(s)), s)
        merged = p.merge(p.empty(), s)
        self.assertEqual(p.finish(merged, Window("u1", 0, 600_000)), ["u1", 4, s[1]])


if __name__ == "__main__":
    unittest.main()
