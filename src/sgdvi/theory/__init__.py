"""Sections III and V of Chaudhari & Soatto (2018) made numerical: the double well of
Example 19 (Fig. 4), its SDE and Fokker-Planck equation (Theorem 5), the linearization of
Lemma 20 and the temperatures of Remarks 11 and 12. Nothing here needs data."""
