"""Machine-side evaluation: ground truth, detectors, COCO mAP."""
