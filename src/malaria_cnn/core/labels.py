"""The two classes and their order: a label's index is its position in CLASS_NAMES.

Parasitized is the positive class everywhere (sensitivity is the recall of Parasitized).
"""

CLASS_NAMES = ("Uninfected", "Parasitized")
POSITIVE = CLASS_NAMES.index("Parasitized")


def call(probability: float, threshold: float) -> str:
    """The class a cell is called: Parasitized when P(Parasitized) >= threshold."""
    return CLASS_NAMES[POSITIVE] if probability >= threshold else CLASS_NAMES[1 - POSITIVE]
