"""Checks on built datasets: `streamaudio validate` and `streamaudio rerender`."""
