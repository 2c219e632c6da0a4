"""`malaria-cnn screen`: from smear photos to parasitemia.

field (the field of view), segment (red cells), crops (cells cut as NIH's crops, made the model's input
as training crops are, stain standardisation included), screen (photo -> cells -> scores), report (rows,
intervals, pictures), truth (labelled boxes and detection scores), synthetic_field (test photos),
run (the command end to end).
"""
