"""Training: recipes (JSON), cached vision features, synthetic-world and conversation data, the accelerate loop.

Public API::

    from videollm.train import TrainConfig, train
    result = train(TrainConfig.load("embedded"))      # or a JSON file path
    result.final_dir                                  # config.json + model.safetensors
"""

from videollm.train.config import (
    ConversationSourceConfig,
    TrainConfig,
    WorldSourceConfig,
    recipe_names,
)
from videollm.train.data import (
    Example,
    MixedDataset,
    WorldExamples,
    WorldScenes,
    read_conversations,
)
from videollm.train.export import export_checkpoint
from videollm.feature_cache import FeatureCache, VideoFeatures, namespace
from videollm.train.loop import (
    TrainResult,
    build_model_config,
    lr_at,
    plot_losses,
    train,
)

__all__ = [
    "ConversationSourceConfig",
    "Example",
    "FeatureCache",
    "MixedDataset",
    "TrainConfig",
    "TrainResult",
    "VideoFeatures",
    "WorldExamples",
    "WorldScenes",
    "WorldSourceConfig",
    "build_model_config",
    "export_checkpoint",
    "lr_at",
    "namespace",
    "plot_losses",
    "read_conversations",
    "recipe_names",
    "train",
]
