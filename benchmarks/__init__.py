"""Side-by-side performance harness: each measurement runs next to a reference on the same data."""
