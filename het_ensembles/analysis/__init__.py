"""Analyses of trained members, after the member directory in the flow.

data -> model -> trainer -> member dir -> evaluator -> **analysis** (reports on what a member
learned):

- `covariance`: the noise correlations a heteroscedastic member's Sigma(x) learned, and the class
  pairs it couples most (the paper's Table 4); `het-ensembles covariance`.
"""
