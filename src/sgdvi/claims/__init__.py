"""The claims ledger: one verdict per claim of the paper and setting, pooled over seeds.

A 100,000-epoch float32 trajectory at lr 0.1 is chaotic: the last bits of the rounding, which
differ between machines, change a single seed's numbers, and three seeds are too few for a
verdict that survives a rerun. The ledger states each claim once per setting, pooled over many
seeds, with an interval and a combined test (:mod:`.pooling`), keeps the per-seed numbers as
supporting rows (:mod:`.ledger`), and says when a per-seed test rejects structureless
surrogate paths more often than its level (:mod:`.calibration`).
"""
