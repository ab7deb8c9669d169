"""Keras layers of the IMP model: embedders, positional tables, attention, encoder blocks, heads."""

from models.layers.attention import MultiHeadAttention
from models.layers.embedders import PatchEmbedder, TextEmbedder, build_embedders
from models.layers.heads import (CommonSpaceProjection, PairTemperatures, l2_normalize,
                                 masked_mean_pool)
from models.layers.positional import PositionalEmbedding, bucket_ids
from models.layers.transformer import Encoder, EncoderBlock, FeedForward

__all__ = [
    "CommonSpaceProjection", "Encoder", "EncoderBlock", "FeedForward", "MultiHeadAttention",
    "PairTemperatures", "PatchEmbedder", "PositionalEmbedding", "TextEmbedder", "bucket_ids",
    "build_embedders", "l2_normalize", "masked_mean_pool",
]
