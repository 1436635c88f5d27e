"""The exact linear probe: the new output layer solved on the features that reach it.

Before any gradient step, a fit computes what reaches the new output layer
(the body's outputs, through any hidden head layers) on the training rows and
solves that layer exactly: L2-regularised logistic regression for a
classifier (multinomial for several classes, binary for two), ridge
regression for a regressor, each weighted by ``sample_weight`` (with
``class_weight`` folded in). Fine-tuning then starts from a head that
already fits the data as well as a linear model of the source's features can
(LP-FT, Kumar et al. 2022), so the transferred layers are not pulled about
by the gradients of a random head, and a frozen body with a single output
layer is exactly that probe.

The regularisation comes from the training rows alone, by evidence
maximisation (MacKay's fixed point, as LogME computes it): for each target
column (one-hot classes, or standardised regression targets) the Bayesian
linear model ``y = F w + e`` with ``w ~ N(0, 1/a)``, ``e ~ N(0, 1/b)`` on the
centred features picks the ``a`` and ``b`` that make the data most likely,
and ``lam = a / b`` is the ridge penalty. Regressors use ``lam`` per target.
Classifiers standardise the features (weighted mean and deviation, which
also lets lbfgs converge in a few dozen iterations) and use ``C = 4 / lam``
with the median ``lam`` over classes on them: near the decision boundary
the logistic loss has a quarter of the curvature of the squared error on
0/1 targets, in units of the logit, so this C puts the same weight on the
penalty. The solution is mapped back onto the raw features.
"""

import numpy as np

# The exact solve sees at most this many rows (drawn with the fit's seed):
# beyond it the probe is a starting point that fine-tuning refines anyway,
# and logistic regression on 10^5 rows would take longer than the fit.
MAX_ROWS = 20_000
_OUTPUT = "output"  # the name of the new output layer (see _network._head)


def _trunk(head):
    """The head's layers before its output layer (flattening, hidden layers)."""
    import keras

    return [
        layer
        for layer in head.layers
        if not isinstance(layer, keras.layers.InputLayer) and layer.name != _OUTPUT
    ]


def output_features(network, inputs, prefix_cached):
    """What reaches the new output layer for each row of ``inputs``, as float64.

    ``inputs`` are the rows the network trains on: the frozen prefix's
    outputs when they were computed ahead (``prefix_cached``), else X.
    """
    import keras

    from ._inference import chunked

    parts = [network.body] if prefix_cached else [network.adapter, network.frozen, network.body]
    layers = [part for part in parts if part is not None] + _trunk(network.head)

    def forward(chunk):
        for layer in layers:
            chunk = layer(chunk, training=False)
        return keras.ops.convert_to_numpy(chunk)

    return chunked(forward, inputs, 1024).astype(np.float64)


def _ridge_penalties(features, targets, weight):
    """Evidence-maximising ridge penalty per target column (weighted, centred)."""
    from ._evidence import maximise_evidence

    w = weight / weight.mean()
    root = np.sqrt(w)[:, None]
    centred_f = features - np.average(features, axis=0, weights=w)
    centred_y = targets - np.average(targets, axis=0, weights=w)
    # Near its maximum the evidence is flat: t to a few digits is all a
    # penalty needs, and the fixed point can creep there for long.
    _, t = maximise_evidence(root * centred_f, root * centred_y, tol=1e-8, caller=None)
    return t


def _logistic(features, codes, weight):
    """Weighted L2 logistic regression (binary or multinomial): kernel and bias.

    It is solved on standardised features, where lbfgs needs a few dozen
    iterations instead of hundreds, and mapped back onto the raw ones.
    """
    from sklearn.linear_model import LogisticRegression

    w = weight / weight.mean()
    mean = np.average(features, axis=0, weights=w)
    scale = np.sqrt(np.average((features - mean) ** 2, axis=0, weights=w))
    scale = np.where(scale > 1e-12, scale, 1.0)
    standard = (features - mean) / scale
    one_hot = np.eye(codes.max() + 1)[codes]
    penalty = float(np.median(_ridge_penalties(standard, one_hot, weight)))
    model = LogisticRegression(C=4.0 / penalty, max_iter=1000)
    model.fit(standard, codes, sample_weight=weight)
    kernel = model.coef_.T / scale[:, None]
    return kernel, model.intercept_ - mean @ kernel


def _ridge(features, targets, weight, penalties):
    w = weight / weight.mean()
    mean_f = np.average(features, axis=0, weights=w)
    mean_y = np.average(targets, axis=0, weights=w)
    centred = features - mean_f
    gram = centred.T @ (w[:, None] * centred)
    moment = centred.T @ (w[:, None] * (targets - mean_y))
    values, vectors = np.linalg.eigh(gram)
    projected = vectors.T @ moment
    kernel = vectors @ (projected / (values[:, None] + penalties[None, :]))
    return kernel, mean_y - mean_f @ kernel


def solve_output(features, y, sample_weight, kind):
    """Kernel and bias of the output layer for task ``kind``, solved exactly."""
    weight = np.asarray(sample_weight, dtype=np.float64)
    if kind == "regression":
        targets = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        return _ridge(features, targets, weight, _ridge_penalties(features, targets, weight))
    return _logistic(features, np.asarray(y).astype(np.int64), weight)


def _stored_solve(key, features, y, sample_weight, kind):
    """``solve_output`` with the hash of its result, for checking on load."""
    from ._cache import data_key

    kernel, bias = solve_output(features, y, sample_weight, kind)
    return kernel, bias, data_key(np.concatenate([kernel.ravel(), np.ravel(bias)]))


def solve_stored(memory, features, y, sample_weight, kind):
    """``solve_output``, stored in ``memory`` when it has a location.

    Candidates of a search that differ in what the probe does not see
    (alpha, learning rate, epochs) start from the same features of the same
    fold: the solve is then done once. The entry is keyed by the hash of
    the features, targets and weights, and recomputed when its own hash does
    not match.
    """
    from ._cache import data_key

    if memory is None or getattr(memory, "location", None) is None:
        return solve_output(features, y, sample_weight, kind)
    arrays = (features, np.asarray(y), np.asarray(sample_weight, dtype=np.float64))
    key = "-".join(data_key(a) for a in arrays) + kind
    cached = memory.cache(_stored_solve, ignore=["features", "y", "sample_weight"])
    kernel, bias, digest = cached(key, *arrays, kind)
    if data_key(np.concatenate([kernel.ravel(), np.ravel(bias)])) != digest:
        kernel, bias, _ = cached.call(key, *arrays, kind)[0]
    return kernel, bias


def probe_head(network, inputs, prefix_cached, y, sample_weight, kind, seed, memory=None):
    """Set the new output layer of ``network`` to the exact linear probe.

    ``inputs``, ``y`` and ``sample_weight`` are the training rows (without
    any rows held out for early stopping), as the network trains on them.
    With a ``joblib.Memory`` that has a location, the solve is stored there
    (``solve_stored``).
    """
    if len(inputs) > MAX_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(len(inputs), MAX_ROWS, replace=False))
        inputs, y, sample_weight = inputs[rows], y[rows], sample_weight[rows]
    features = output_features(network, inputs, prefix_cached)
    if not np.all(np.isfinite(features)):
        raise ValueError(
            "the source's features on X are not finite (they overflowed): X is probably far "
            "off the scale the source was trained on"
        )
    kernel, bias = solve_stored(memory, features, y, sample_weight, kind)
    output = network.head.get_layer(_OUTPUT)
    output.set_weights([kernel.astype(np.float32), np.ravel(bias).astype(np.float32)])


def probe_only(network):
    """Whether the probe is the whole fit: nothing but the output layer trains."""
    parts = [network.adapter, network.body, *_trunk(network.head)]
    return not any(part.trainable_weights for part in parts if part is not None)
