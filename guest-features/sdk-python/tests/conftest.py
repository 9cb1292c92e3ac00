import pathlib
import sys

# The SDK is imported from the source tree, not installed.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
