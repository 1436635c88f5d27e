"""The seed rule: every random choice of a fit comes from ``random_state``.

Global generators (NumPy's, TensorFlow's, Keras') are never seeded or read, so
equal seeds give equal results in threads, in worker processes and on dask
workers alike.
"""

from sklearn.utils import check_random_state

_MAX_SEED = 2**31 - 1


def fit_seeds(random_state):
    """Draw the seeds of one fit from ``random_state``.

    Returns a dict with one integer seed for each independent source of
    randomness: weight initialisation (``"init"``), the order of training
    batches (``"shuffle"``) and the validation split (``"split"``).
    """
    try:
        rng = check_random_state(random_state)
    except (TypeError, ValueError):
        raise ValueError(
            f"random_state={random_state!r} is not valid: use None, an int in [0, 2**32 - 1] "
            "or a numpy.random.RandomState"
        ) from None
    init, shuffle, split = rng.randint(_MAX_SEED, size=3)
    return {"init": int(init), "shuffle": int(shuffle), "split": int(split)}


def draw_seed(rng):
    """One integer seed for a Keras initialiser or layer, drawn from a NumPy Generator."""
    return int(rng.integers(_MAX_SEED))
