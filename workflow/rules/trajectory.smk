# Stage: trajectory (filled in by its owner).


def trajectory_targets():
    return []
