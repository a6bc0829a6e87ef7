"""Named bytes and nothing else: the one small interface every repository storage implements.

``base`` states the contract; ``local`` (a folder) and ``memory`` implement it; wrappers (retry,
faults) embed another store; ``open`` is the one place a store stack is composed from a location.
Nothing here knows what the bytes mean.
"""
