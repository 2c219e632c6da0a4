"""The two classes and their order: a label's index is its position in CLASS_NAMES.

Parasitized is the positive class everywhere (sensitivity is the recall of Parasitized).
"""

CLASS_NAMES = ("Uninfected", "Parasitized")
POSITIVE = CLASS_NAMES.index("Parasitized")
