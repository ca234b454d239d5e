# Stage: data (filled in by its owner).
