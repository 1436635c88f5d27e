"""The shared parameter and attribute sections of the estimators' docstrings.

``TransferClassifier`` and ``TransferRegressor`` take the same parameters
and set the same fitted attributes; their docstrings are assembled from
these sections in ``estimators``. The ``source_loss`` entries come from the
docstrings of the source terms (``_source_terms``), so each is written once.
"""

import inspect
import textwrap

from ._source_terms import SOURCE_TERMS

_PARAMETERS_TEMPLATE = """
    Parameters
    ----------
    source : keras.Model, str, path-like or callable, default=None
        The source model: a Sequential or functional ``keras.Model``, a path to
        a ``.keras`` file (loaded in Keras' safe mode), a fitted scikit-learn
        wrapper of a Keras model (scikeras or ``keras.wrappers``), or a
        zero-argument callable returning a model. It is never modified: fit
        works on a copy, and ``clone`` shares it instead of copying it.
        Required: ``None`` raises an error in ``fit``.

    freeze : int or "all", default=0
        Freeze depth. The first ``freeze`` layers of the source body that hold
        weights, counted from the input, are frozen together with every layer
        before them. Negative values count from the top (``-1`` freezes every
        weighted body layer but the last); ``"all"`` freezes the whole body
        (pure feature extraction). Frozen layers, BatchNorm and Dropout
        included, run in inference mode. The layers of a model nested in the
        source (a Keras application used as a layer) count one by one, and
        ``frozen_layers_`` names them.

    batchnorm : {"frozen", "train"}, default="frozen"
        What fine-tuning does to the source's BatchNormalization layers.
        ``"frozen"`` keeps them as the source has them, whatever ``freeze``
        says: they run in inference mode, normalising with the source's
        moving statistics, and never update them, so a few target rows in
        small batches cannot overwrite statistics the source learned from
        plenty of data (as Keras' fine-tuning guide advises). Keras runs a
        BatchNormalization layer in inference mode exactly when it is not
        trainable, so their scale and offset stay fixed too. ``"train"``
        trains those that ``freeze`` leaves trainable as Keras does: on batch
        statistics, updating the moving ones. With ``pretrained=False`` there
        are no source statistics to keep, and they train either way.
        ``frozen_layers_`` lists only the layers ``freeze`` froze.

    alpha : float in [0, 1), default=0.0
        Weight of the source-knowledge term in
        ``L = (1 - alpha) * L_target + alpha * L_source``. ``alpha=0`` is plain
        fine-tuning.

    source_loss : {"distill", "l2sp", "joint"}, default="distill"
        The source-knowledge term ``L_source``:

{source_terms}

        All three terms are dimensionless and zero (or minimal) at the
        source, so sweeping ``alpha`` over [0, 1) goes from no constraint to
        a dominant one.

    cut : int, str or None, default=None
        Last layer of the source body, as an index into the source's layers
        (input layers not counted; negative counts from the end) or a layer
        name; the layers of nested models count one by one. ``None`` cuts
        off the source's output layer (``-2``) when it has one: when its last
        layer is a ``Dense`` layer or applies a softmax or sigmoid. A headless
        source, whose last layer is anything else (the pooling layer of a
        Keras application built with ``include_top=False, pooling="avg"``, a
        convolution, a normalisation), is transferred whole (``-1``).

    head : None, int or tuple of int, default=None
        The new target head. ``None`` is a single output layer (softmax for
        multiclass, sigmoid for binary, linear for regression); an int or a
        tuple of ints adds hidden ReLU Dense layers of those sizes first.

    head_init : {"probe", "random"}, default="probe"
        How the new output layer starts. ``"probe"`` solves it exactly on
        the features that reach it, before any gradient step: L2-regularised
        logistic regression (multinomial, or binary for two classes) for a
        classifier, ridge regression for a regressor, weighted by
        ``sample_weight`` and ``class_weight``, with the penalty chosen by
        evidence maximisation on the training rows (see the user guide's
        "Concepts" page). Fine-tuning then starts from a head that already
        fits the data (LP-FT, Kumar et al. 2022). When nothing else can
        train (``freeze="all"``, no hidden head layers, no ``"dense"`` input
        adapter) the probe is the whole fit and no epoch runs. Hidden head
        layers keep their random initial weights and the probe solves the
        output layer on their outputs; a ``"dense"`` input adapter is
        probed through its initial projection. ``pretrained=False`` probes
        too, so that the from-scratch twin follows the same recipe; a warm
        start keeps the fitted head. ``"random"`` starts from Glorot-uniform
        weights.

    input_adapter : {"auto", "reshape", "resize", "dense"} or None, default="auto"
        How the samples of ``X`` reach the source input, inside ``model_``.
        ``"reshape"`` reshapes each sample (64 columns become an (8, 8, 1)
        image) and needs the counts to match; ``"resize"`` takes images
        (``X`` of shape (n, h, w) or (n, h, w, c)) to the source's image
        size with Keras' ``Resizing`` layer (bilinear) and maps one channel
        to c (copied) or c channels to one (averaged); ``"dense"`` learns a
        linear projection onto the source input, for transfer across feature
        spaces; ``"auto"`` passes samples of the source's input shape as
        they are, resizes images of another size or channel count, reshapes
        when the counts match, and otherwise refuses ``X`` with an error that
        suggests ``"dense"`` (a wrong feature count is more often a mistake
        than a change of feature space); ``None`` requires samples of
        exactly the source's input shape.

    preprocess : None, str or keras.layers.Layer, default=None
        The source's own input scaling, put inside ``model_`` between the
        input adapter and the source: ``X`` must reach the source on the
        scale it was trained on. ``None`` adds nothing. A Keras layer, such
        as ``keras.layers.Rescaling(1 / 127.5, offset=-1)`` or a
        ``keras.layers.Normalization``, is copied with its weights and does
        not train. The name of a Keras application family applies the
        scaling of its ``preprocess_input`` to RGB values in [0, 255], as
        plain Keras layers: ``"mobilenet"``, ``"mobilenet_v2"``,
        ``"inception_v3"``, ``"inception_resnet_v2"``, ``"xception"``,
        ``"nasnet"`` and ``"resnet_v2"`` scale to [-1, 1]; ``"resnet"``,
        ``"resnet50"``, ``"vgg16"`` and ``"vgg19"`` turn RGB into BGR and
        subtract the ImageNet mean; ``"densenet"`` scales to [0, 1] and
        standardises each channel; ``"mobilenet_v3"``, ``"efficientnet"``,
        ``"efficientnet_v2"`` and ``"convnext"`` models scale their inputs
        themselves, so nothing is added. The rows of a ``SourceData`` are
        taken to be in the source's input space already.

    pretrained : bool, default=True
        If False, keep the architecture and the freezing but re-initialise
        every weight: the from-scratch baseline that transfer must beat. The
        source-knowledge term still refers to the real source model.

    head_warmup : int, default=0
        Number of the ``epochs`` that train only the new layers (head and
        input adapter) with every transferred layer frozen, before the layers
        that ``freeze`` leaves trainable are unfrozen: linear probing, then
        fine-tuning (Kumar et al. 2022). Skipped when warm-starting.

    source_lr_scale : float >= 0, default=1.0
        Learning rate of the transferred layers relative to the new layers
        (discriminative learning rates, as in ULMFiT). The update itself is
        scaled, so it works under Adam too.

    optimizer : str, default="adam"
        Name of a Keras optimizer (``"adam"``, ``"sgd"``, ``"rmsprop"``,
        ``"adamw"``, ...).

    learning_rate : float, default=1e-3
        Learning rate of the optimizer.

    epochs : int or "auto", default="auto"
        Number of passes over the training data. ``"auto"`` sizes the
        training to the data: as many epochs as make 1000 optimizer steps
        (1000 full-batch steps for 30 rows, 32 epochs of 1000 rows, one
        epoch of 100,000 rows). Starting from the probe head, that is
        enough for fine-tuning to settle on small targets without
        over-training large ones (the measurements are in the user guide).
        When the training loss is still falling steeply at the end, a
        ``ConvergenceWarning`` says so.

    batch_size : int, default=32
        Mini-batch size (capped at the number of training samples). A fit
        called under a distribution (inside a ``tf.distribute`` strategy's
        ``scope()``, or after ``keras.distribution.set_distribution`` on
        JAX) splits each batch of ``batch_size`` rows over its devices, and
        trains as on one device, to float32 rounding (see the user guide's
        "Scaling out").

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data and stop when
        its target loss has not improved for ``n_iter_no_change`` epochs,
        keeping the best weights.

    validation_fraction : float in (0, 1), default=0.1
        Share of the training data held out when ``early_stopping=True``.

    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.

    callbacks : list of keras.callbacks.Callback, default=None
        Extra Keras callbacks. Each fit uses deep copies, so the objects
        passed here are left untouched.

    memory : None, str or joblib.Memory, default=None
        Where to cache the outputs of the frozen layers and of the source
        model on the training data, as in ``Pipeline(memory=...)``. Entries
        are keyed by the frozen weights, the cut and freeze point and the
        data, so grid-search candidates that differ only in ``alpha``,
        ``learning_rate``, ``head`` or ``epochs`` reuse them, also across
        worker processes. Outputs larger than the input rows (early
        convolutions with many channels) are recomputed rather than stored,
        as loading them would cost more. The probe head's solve is stored
        too, keyed by the features, targets and weights it is solved on, so
        candidates that differ in what it does not see solve it once. A
        corrupt entry is recomputed. Without ``memory`` they are still
        computed only once per fit.
        ``predict`` and ``score`` read and store the frozen prefix's outputs
        on the data they are given as well, so the candidates of a search
        also share them on each scoring fold; their predictions then come
        from the prefix and the rest of the network run separately, equal to
        ``model_.predict`` up to float32 rounding (relative differences of
        1e-7 to 1e-5, larger where the head's weights are large).
        When every transferred layer is frozen (for example
        ``freeze="all"``), the fits of one source share one frozen copy of
        it, made by the first: a search on a large backbone copies it once,
        not once per candidate. ``model_`` is then built, as the estimator's
        own copy, when it is first read.

    warm_start : bool, default=False
        If True and the estimator is fitted, ``fit`` continues training the
        fitted network instead of starting over.

    random_state : int, RandomState instance or None, default=None
        Seeds every random choice of a fit (weight initialisation, batch
        order, validation split) without touching global generators. Equal
        values give identical predictions on CPU.

    verbose : int, default=0
        0 is silent, 1 shows Keras' progress bar.
"""

ATTRIBUTES_DOC = """
    model_ : keras.Model
        The trained target network. It maps the raw ``X`` given to fit
        (float32 samples of ``input_shape_``) to the target output, input
        adapter and ``preprocess`` included, and saves as ``.keras`` with no
        custom objects. After a fit that shared a frozen backbone (see
        ``memory``) it is built when first read; prediction does not need it.

    history_ : dict of str to list of float
        Per-epoch values of ``loss`` (the full objective), ``target_loss`` and
        ``source_loss``, with ``val_`` versions under early stopping.

    n_iter_ : int
        Number of epochs run by the last fit.

    frozen_layers_ : list of str
        Names of the frozen source layers.

    input_adapter_ : str
        How X reached the source input: ``"none"``, ``"reshape"``,
        ``"resize"`` or ``"dense"``.

    input_shape_ : tuple of int
        Shape of one sample of the ``X`` seen during fit: ``(n_features_in_,)``
        for 2-D ``X``, ``(height, width, channels)`` for images. ``model_``
        takes inputs of this shape; ``predict`` takes samples of this shape
        or flattened to ``n_features_in_`` columns.

    n_features_in_ : int
        Number of values in one sample of the ``X`` seen during fit: the
        number of columns of 2-D ``X``, ``height * width * channels`` for
        images.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` has string column names.
"""


def _term_docs():
    """The ``source_loss`` entries, from the docstrings of the source terms."""
    items = []
    for term in SOURCE_TERMS.values():
        text = textwrap.fill(" ".join(inspect.cleandoc(term.__doc__).split()), width=70)
        items.append(textwrap.indent(text, "          ").replace("          ", "        - ", 1))
    return "\n\n".join(items)


PARAMETERS_DOC = _PARAMETERS_TEMPLATE.replace("{source_terms}", _term_docs())
