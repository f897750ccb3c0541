"""Which replica runs this code: per-replica random streams under `tf.distribute`.

Keras 3 has no backend-neutral replica API. On JAX, `keras.distribution.DataParallel` traces one
program over the global batch, so every image already draws its own augmentation and BatchNorm
already sees the global batch. On TensorFlow, `tf.distribute.MirroredStrategy` runs the step once
per device on a slice of the global batch; that is the one place this module looks at TensorFlow
(imported lazily, on that backend only, so `models/` stays importable without it).
"""

from __future__ import annotations

import keras


def replica_context() -> tuple[object, int]:
    """(replica id, number of replicas in sync) of the code being traced.

    The id is an int or an int32 scalar tensor (`tf.distribute.ReplicaContext.replica_id_in_sync_group`,
    https://www.tensorflow.org/api_docs/python/tf/distribute/ReplicaContext); (0, 1) outside a
    replica context, under the default strategy, and on every backend other than TensorFlow.
    """
    if keras.backend.backend() != "tensorflow":
        return 0, 1
    import tensorflow as tf  # TensorFlow backend only, where it is loaded already

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return 0, 1
    return context.replica_id_in_sync_group, context.num_replicas_in_sync
