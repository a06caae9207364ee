"""Analyses of trained members, after the member directory in the flow.

data -> model -> trainer -> member dir -> evaluator -> **analysis** (reports on what a member
learned):

- `covariance`: the noise correlations a heteroscedastic member's Sigma(x) learned, and the class
  pairs it couples most (the paper's Table 4); `het-ensembles covariance`.
- `where_het_helps` (+ `where_het_helps_outputs`, its files): on the examples a heteroscedastic
  member gets right and a deterministic one wrong, the rank of Cov(true class, the deterministic
  model's class) in Sigma(x) and the top examples (the paper's Figure 2 and Table 5);
  `het-ensembles covariance --member HET --baseline_member HOM`.
"""
