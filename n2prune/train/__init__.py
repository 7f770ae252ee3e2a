"""Learning with pruning, as ``n2d2 net.ini -learn-epoch N``: ``trainer`` (the loop and its
options), ``objective`` (loss from targets), ``metrics``, ``checkpoint`` (atomic, resumable),
``progress`` (console), ``report`` (the files a run leaves) and ``plots``."""
