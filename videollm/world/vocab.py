"""The synthetic world's vocabulary and the fixed held-out split of shape x colour x motion combinations.

Everything here is plain data so that ground truth, tests and evaluation code share one definition.
"""

from __future__ import annotations

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "diamond", "cross", "ring")

# Saturated, well separated hues (RGB). Backgrounds are kept muted and objects get a dark outline, so these stay
# recognisable on any background.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 190, 50),
    "blue": (40, 80, 240),
    "yellow": (250, 225, 20),
    "purple": (150, 50, 210),
    "orange": (255, 140, 0),
    "white": (250, 250, 250),
    "cyan": (0, 215, 225),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

# Nominal radius as a fraction of min(width, height); the shape fits a circle of about this radius.
SIZES: dict[str, float] = {"small": 0.075, "medium": 0.115, "large": 0.165}
SIZE_NAMES: tuple[str, ...] = tuple(SIZES)

MOTIONS: tuple[str, ...] = ("left", "right", "up", "down", "static", "spin", "grow", "bounce")

# Caption phrase of each motion ("a large red circle moves left").
MOTION_PHRASES: dict[str, str] = {
    "left": "moves left",
    "right": "moves right",
    "up": "moves up",
    "down": "moves down",
    "static": "stays still",
    "spin": "spins",
    "grow": "grows",
    "bounce": "bounces",
}

# A spinning circle or ring looks exactly like a static one, so that pair is never generated.
ROTATION_INVARIANT: frozenset[str] = frozenset({"circle", "ring"})

BACKGROUND_KINDS: tuple[str, ...] = ("flat", "gradient", "noise", "photo")

# scikit-image images that ship inside its wheel (verified to load offline with scikit-image 0.26).
PHOTOS: tuple[str, ...] = (
    "astronaut", "camera", "chelsea", "coffee", "rocket", "coins", "hubble_deep_field",
    "immunohistochemistry", "moon", "grass", "gravel", "brick", "clock", "page",
)

# Words a needle clip can show; the haystack never contains text.
NEEDLE_WORDS: tuple[str, ...] = (
    "apple", "banana", "cherry", "lemon", "mango", "peach", "tiger", "zebra", "otter", "panda", "piano", "violin",
)


def is_valid_combo(shape: str, motion: str) -> bool:
    """True unless the motion would be invisible on this shape (spinning circles and rings)."""
    return not (motion == "spin" and shape in ROTATION_INVARIANT)


def is_heldout(shape: str, colour: str, motion: str) -> bool:
    """Whether a shape x colour x motion combination belongs to the held-out split.

    The rule is a Latin-square design: (3·shape + 5·colour + 7·motion) mod 8 == 0 with indices into SHAPES,
    COLOUR_NAMES and MOTIONS. Because 3, 5 and 7 are invertible mod 8, every shape x colour, shape x motion and
    colour x motion pair has exactly one held-out completion: each pair of attributes is seen in training (with
    the other 7 values of the third attribute) and the test is purely compositional. 1/8 of the triples are held out.

    Args:
        shape: a name from SHAPES.
        colour: a name from COLOUR_NAMES.
        motion: a name from MOTIONS.

    Returns:
        True for a held-out triple.
    """
    s, c, m = SHAPES.index(shape), COLOUR_NAMES.index(colour), MOTIONS.index(motion)
    return (3 * s + 5 * c + 7 * m) % 8 == 0


def heldout_combos() -> list[tuple[str, str, str]]:
    """All valid held-out (shape, colour, motion) triples, in vocabulary order."""
    return [
        (s, c, m)
        for s in SHAPES for c in COLOUR_NAMES for m in MOTIONS
        if is_heldout(s, c, m) and is_valid_combo(s, m)
    ]
