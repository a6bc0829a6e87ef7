"""Restore targets: where an image is written back. ``writer`` checks a target (in use, too
small, a mounted device) and writes it, sparse in files and zeroed or discarded on devices;
``writeback`` keeps the disk busy while the workers decrypt; ``loop`` gives a loop device over a
part of an image file (resized restores). A new kind of target (an NBD export, a cloud volume) is
a module here beside ``writer``."""
