"""Reading sources and writing targets: block devices (O_DIRECT, page-aligned) and image files,
who uses a device (mounts, loop devices, swap), and the providers that give a point-in-time view
of a source (``providers``).
"""
