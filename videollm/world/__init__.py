"""The synthetic video world: seeded, procedural videos with exact ground truth (docs/design.md §6).

Scenes separated by hard cuts (and some fades through black); each scene a background (flat, gradient, noise or a
scikit-image photograph) and 1-3 outlined shapes with a colour, size and motion. Everything is a pure function of a
``VideoSpec``, which is a pure function of a seeded ``numpy.random.Generator``::

    rng = np.random.default_rng(0)
    spec = sample_video_spec(rng)            # pure data
    for frame in render_frames(spec): ...    # (H, W, 3) uint8 RGB, streamed
    truth = ground_truth(spec)               # cuts, scenes, captions, QA
    write_video(spec, "v.mp4")               # H.264 via PyAV

Held-out compositions: ``vocab.is_heldout`` fixes 1/8 of shape x colour x motion triples that training samples
never contain and ``heldout=True`` samples contain exclusively.
"""

from videollm.world.generate import KINDS, generate, sample_rng, write_samples
from videollm.world.render import draw_object, render_background, render_frames, render_scene
from videollm.world.sample import sample_attributes, sample_objects, sample_scene, sample_video_spec
from videollm.world.spec import Background, ObjectSpec, SceneSpec, VideoSpec, WorldConfig, object_track
from videollm.world.tasks import (
    ANSWERS,
    EgoPlanSample,
    egoplan_record,
    make_egoplan_sample,
    make_image_spec,
    make_needle_video,
    needle_object_scene,
    render_image,
    visdial_dense,
    visdial_dialog,
    visdial_json,
)
from videollm.world.truth import (
    CROSS_SCENE_TYPES,
    cross_scene_qa,
    ground_truth,
    needle_question,
    needle_truth,
    scene_caption,
    video_qa,
)
from videollm.world.vocab import (
    BACKGROUND_KINDS,
    COLOUR_NAMES,
    COLOURS,
    MOTIONS,
    PHOTOS,
    SHAPES,
    SIZE_NAMES,
    SIZES,
    heldout_combos,
    is_heldout,
    is_valid_combo,
)
from videollm.world.writer import decode_frames, write_frames, write_video

__all__ = [
    "ANSWERS", "BACKGROUND_KINDS", "Background", "COLOURS", "COLOUR_NAMES", "CROSS_SCENE_TYPES", "EgoPlanSample",
    "KINDS", "MOTIONS", "ObjectSpec", "PHOTOS", "SHAPES", "SIZES", "SIZE_NAMES", "SceneSpec", "VideoSpec",
    "WorldConfig", "cross_scene_qa", "decode_frames", "draw_object", "egoplan_record", "generate", "ground_truth",
    "heldout_combos", "is_heldout", "is_valid_combo", "make_egoplan_sample", "make_image_spec", "make_needle_video",
    "needle_object_scene", "needle_question", "needle_truth", "object_track", "render_background", "render_frames",
    "render_image", "render_scene", "sample_attributes", "sample_objects", "sample_rng", "sample_scene",
    "sample_video_spec", "scene_caption", "video_qa", "visdial_dense", "visdial_dialog", "visdial_json",
    "write_frames", "write_samples", "write_video",
]
