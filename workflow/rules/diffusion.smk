# Stage: diffusion (filled in by its owner).


def diffusion_targets():
    return []
