import pathlib
import sys

# The port and the SDK are imported from the source tree, not installed.
HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[3] / "sdk-python")]
