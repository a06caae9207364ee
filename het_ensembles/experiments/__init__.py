"""Experiments built from the trainer and the evaluator: is one recipe better than another?

- `compare`: two or more configs, N seeds each: the members' spread and paired bootstrap
  intervals of the ensembles' differences; `het-ensembles compare`.
- `study`: `compare` repeated on random held-out variants of an embedded dataset family, counting
  how often the second config wins; `het-ensembles study`.

The main job, `het_ensembles.demo`, uses `compare` for its Het-vs-Hom interval.
"""
