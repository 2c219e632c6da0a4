"""Stage export and the `malaria-cnn` command: SavedModel, TFLite, model card; predicting new crops."""
