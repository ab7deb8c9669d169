"""`static_graph`: run a function without AutoGraph conversion.

The model code branches only on Python values (modality names, static shapes, config flags), so
AutoGraph has nothing to convert; yet inside a `tf.function` Keras converts every subclassed layer's
`call` and everything it calls, which made the first trace of a tiny model take over 10 s. Every
training task and serving signature is traced separately, so the model API and all our layers' `call`s
opt out. Nested Keras layers (the MoE included) inherit the disabled status.
"""

import tensorflow as tf


def static_graph(fn):
    """`tf.autograph.experimental.do_not_convert(fn)`, keeping `fn`'s signature visible to Keras
    (which inspects `call` for `training` / `mask` arguments)."""
    return tf.__internal__.decorator.make_decorator(
        fn, tf.autograph.experimental.do_not_convert(fn))
