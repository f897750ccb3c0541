"""The SimSiam model core: pure Keras 3 (`keras.ops`), runs on the TensorFlow and JAX backends.

Reading order (each module uses only the ones above it):
    config.py      SimSiamConfig: the recipe, validated in one place; the precision switch
    augment.py     SimSiamAugmentation (two random views, inside the compiled step) and eval_view
    conv.py        Conv2D / MaxPool3x3S2 with PyTorch's padding, fast under XLA on CPU
    backbones.py   ResNet-18 / ResNet-50 (zero-initialised last BN per block)
    encoder.py     per-channel normalisation + backbone: what every consumer embeds with
    heads.py       SimSiamProjectionHead, SimSiamPredictionHead (paper Sec. 4)
    losses.py      NegativeCosineSimilarity with stop-gradient; collapse_std
    simsiam.py     the SimSiam keras.Model (compute_loss), build_simsiam, make_schedule, compile_simsiam
    optimizer.py   SimSiamSGD: PyTorch-style L2 and a fixed predictor learning rate
    monitors.py    embed (through eval_view), KNNMonitor, LearningRateLogger, EpochHistory
    evaluation.py  kNN, the linear probe (fit_linear_probe), cosine top-k; numpy only

Nothing is re-exported here on purpose: `import models.config` must stay free of Keras and
TensorFlow, so that the command line answers `--help` and checks its arguments at once.
"""
