"""Tools beside the flow, not part of it.

- `bench`: time and memory of a train step of the Monte Carlo head against edward2 0.0.2's
  layer and a plain Dense head; `het-ensembles bench` (needs the `[reference]` extra).
"""
