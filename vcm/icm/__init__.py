"""SA-ICM: a learned image codec (TCM) trained with the edge-masked loss (5), the intra baseline."""
