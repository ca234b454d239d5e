# Stage: train (filled in by its owner).
