"""Stage 1, the data: where data and weights come from, one loader per data set, splits, the
student's word tokenizer and vocabulary, GloVe vectors and transfer-set augmentation."""
