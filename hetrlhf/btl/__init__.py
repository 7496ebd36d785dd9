"""Liu, Lu & Sun: the statistics of heterogeneous preferences.

``model`` (the likelihood of pairwise and K-wise data behind one family interface; the
K-wise likelihood itself in ``plackett_luce``) → ``newton`` (the one Newton solver) →
``estimate`` (``fit``, Algorithm 1) → ``inference`` (Fisher information, covariance,
Wald and reward intervals, z-tests) → ``confidence`` (``confidence_intervals(method=)``:
Wald, profile, Bartlett, bootstrap, sandwich) → ``multitest``, ``theory`` (the
theorems' quantities), ``bayes`` (NUTS), ``neural`` (an MLP reward with last-layer
Laplace). This wing never imports ``hetrlhf.alignment``.
"""
