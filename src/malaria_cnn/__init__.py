"""malaria-cnn: tell parasitized from uninfected red blood cells in thin-smear crops."""

__version__ = "0.1.0"
