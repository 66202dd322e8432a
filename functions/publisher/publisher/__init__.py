"""The stream publisher: one function per table stream, code in the layer (converge.publisher)."""
