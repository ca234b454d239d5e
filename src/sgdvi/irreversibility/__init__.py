"""Probability current of a sampled trajectory: is detailed balance broken?
(Remark 17's limit cycles, tested directly).

Section III of Chaudhari & Soatto (2018) splits the SGD drift into ``-D grad Phi`` plus a force
``j(x)`` (eq. (8)); when ``j != 0`` the steady state carries a probability current and the
"most likely trajectories are limit cycles" (Lemma 7, Remark 17, Fig. 3). The direct observable
is the area-enclosing rate ``L = (1/2) <x dx^T - dx x^T> / dt`` (antisymmetric; zero for every
process in detailed balance):

* :mod:`.estimator`: ``L_hat`` of a sampled path with a batch-means standard error, z-scores,
  permuted-increment surrogate random walks, held-out principal components, stationarity and
  drift diagnostics;
* :mod:`.processes`: validation processes with closed forms (Ornstein-Uhlenbeck of eq. (15),
  Example 19's double well);
* :mod:`.lemma20`: Lemma 20 on data (fit ``F``, ``D`` of eq. (15), recover ``Q``);
* :mod:`.sgd`: the tiny-fc trajectories (Section IV-B): D(x) directions and the per-seed verdict;
* :mod:`.validation`: rows of ``results/theory/irreversibility.parquet``.
* :mod:`.reference`: the straightforward (slow) per-seed analysis the fast path of :mod:`.sgd`
  is tested and benchmarked against.
"""
